-- A shell pipeline built by hand: `ls -1 | cut -d. -f1 | uniq | sort | tee FILE`
-- as five processes started with ipc.exec, each stdout joined to the next stdin
-- by a pipe; the result is compared with what sh makes of the same line.
-- Works in a temp dir it creates and removes.  Run: lua5.4 examples/proc_pipeline.lua
local ipc = require "lipc"

local base = ("/tmp/lipc-example.%d"):format(ipc.getpid())
local files = base .. "/files"
local made = {}          -- everything to remove at the end, in reverse order
local cleanup <close> = setmetatable({}, { __close = function() -- luacheck: ignore cleanup
  for i = #made, 1, -1 do os.remove(made[i]) end
end })
assert(os.execute("mkdir -m 700 " .. base .. " && mkdir " .. files), "cannot make " .. base)
made[1], made[2] = base, files
for _, name in ipairs { "notes.txt", "notes.md", "main.c", "main.h", "Makefile", "data.tar.gz", "beta.lua" } do
  made[#made + 1] = files .. "/" .. name
  assert(io.open(made[#made], "w")):close()
end
local out_lipc, out_sh = base .. "/by_lipc", base .. "/by_sh"
made[#made + 1], made[#made + 2] = out_lipc, out_sh

local stages = { { "ls", "-1" }, { "cut", "-d.", "-f1" }, { "uniq" }, { "sort" }, { "tee", out_lipc } }
local procs, input = {}, nil     -- input: the read end feeding the next stage
for i, argv in ipairs(stages) do
  local spec = { table.unpack(argv) }
  spec.cwd, spec.stdin = files, input or "null"
  local r, w
  if i < #stages then
    r, w = assert(ipc.pipe())
    spec.stdout = w
  else
    spec.stdout = "pipe"          -- the last stage's output comes back to us
  end
  procs[i] = assert(ipc.exec(spec))
  print(("started %-14s pid %d"):format(table.concat(argv, " "), procs[i].pid))
  -- the children hold their own copies now: close ours, or no stage ever sees end of stream
  if input then input:close() end
  if w then w:close() end
  input = r
end
local result = assert(procs[#procs].stdout:read("a", 10))
procs[#procs].stdout:close()
for i, p in ipairs(procs) do
  local how, code = p:wait(10)
  assert(how == "exited" and code == 0, ("stage %d ended %s %s"):format(i, how, code))
end
io.write("pipeline output:\n", result)

-- the same line run by sh, for comparison
local sh <close> = assert(ipc.exec{ "sh", "-c", "ls -1 | cut -d. -f1 | uniq | sort | tee " .. out_sh,
                                    cwd = files, stdout = "pipe" })
local expected = assert(sh.stdout:read("a", 10))
sh.stdout:close()
assert(sh:wait(10) == "exited")
local function slurp(p) local f <close> = assert(io.open(p)); return f:read("a") end
assert(result == expected, "differs from sh:\n" .. expected)
assert(slurp(out_lipc) == slurp(out_sh), "tee files differ")
print("same as sh's output and tee file: yes")
for _, p in ipairs(procs) do p:close() end
