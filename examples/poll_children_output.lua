-- Reading several children at once: each child writes its lines to its own
-- pipe at its own pace; ipc.poll tells the parent which pipes have data
-- (or have reached end of stream), so no read ever blocks on a quiet child.
-- Run from the repository root: lua5.4 examples/poll_children_output.lua
local ipc = require "lipc"

local readers, children, text = {}, {}, {}
for c = 1, 4 do
  local r, w = assert(ipc.pipe())
  children[c] = assert(ipc.spawn(function()
    r:close()
    for line = 1, c do
      local x = 0
      for i = 1, 200000 * (5 - c) do x = x + i % 3 end   -- some work first
      assert(w:write(("child %d line %d of %d\n"):format(c, line, c)))
    end
    w:close()
    return 0
  end))
  w:close()   -- the parent keeps only the read end: EOF when the child is done
  readers[c] = r
  text[r] = {}
end

local open = { table.unpack(readers) }
while #open > 0 do
  local ready = ipc.poll(open, 10)
  assert(#ready > 0, "no child wrote anything for 10 s")
  for _, r in ipairs(ready) do
    local chunk = r:read(4096, 0)
    if chunk then
      for line in chunk:gmatch("[^\n]+") do print("got: " .. line) end
      text[r][#text[r] + 1] = chunk
    else                                  -- end of stream: drop it from the list
      for i, o in ipairs(open) do if o == r then table.remove(open, i) break end end
    end
  end
end

for c, r in ipairs(readers) do
  local lines = select(2, table.concat(text[r]):gsub("\n", ""))
  assert(lines == c, ("child %d sent %d lines"):format(c, lines))
  r:close()
  local how, code = children[c]:wait(10)
  assert(how == "exited" and code == 0)
  children[c]:close()
end
print("parent: every child's output read, none blocked the others")
