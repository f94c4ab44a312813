-- Shell pipelines from Lua: the tutorial's `ls -1 | cut -d. -f1 | uniq |
-- sort | tee dir_contents` run as a lipc.topology pipeline in a directory of
-- our own, then a pipeline mixing commands with a Lua function stage. Each
-- stage's exit status is reported; the output is compared with sh's.
-- Run from the repository root: lua5.4 examples/topology_pipeline.lua
local ipc = require "lipc"
local topo = require "lipc.topology"

local dir = ("/tmp/lipc-example.%d"):format(ipc.getpid())
assert(os.execute("mkdir -m 700 " .. dir))
local _ <close> = setmetatable({}, { __close = function() os.execute("rm -rf " .. dir) end })
for _, name in ipairs { "notes.txt", "notes.md", "main.lua", "main.c", "Makefile", "zeta.txt" } do
  assert(io.open(dir .. "/" .. name, "w")):close()
end

local res = topo.pipeline{
  { "ls", "-1", cwd = dir }, { "cut", "-d.", "-f1" }, { "uniq" }, { "sort" }, { "tee", dir .. "/dir_contents" },
  stdout = "capture",
}:run(10)
for i, r in ipairs(res) do
  print(("stage %d %-18s %s %d"):format(i, table.concat(r.argv, " "), r.status, r.code))
end
io.write(res.output)
assert(res.ok)
local sh = assert(io.popen("cd " .. dir .. " && ls -1 | grep -v dir_contents | cut -d. -f1 | uniq | sort"))
local expected = sh:read("a")
sh:close()
assert(res.output:gsub("dir_contents\n", "") == expected, "differs from sh")
print("same output as sh")

-- a Lua function stage between commands: number the sorted lines
res = topo.pipeline{
  { "printf", "pear\\napple\\nfig\\n" },
  { "sort" },
  function(inp, out)
    local n = 0
    for line in inp:lines() do n = n + 1; assert(out:write(("%d. %s\n"):format(n, line))) end
    return n == 3 and 0 or 1
  end,
  stdout = "capture",
}:run(10)
io.write(res.output)
assert(res.ok and res.output == "1. apple\n2. fig\n3. pear\n")
