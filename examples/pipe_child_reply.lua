-- The child answers back: a pipe made before fork carries "done" from the
-- child to the parent, which blocks reading until the child has written.
-- Run from the repository root: lua5.4 examples/pipe_child_reply.lua
local ipc = require "lipc"

local pr, pw = assert(ipc.pipe())
local r <close> = pr
local w <close> = pw

-- ipc.spawn forks and runs the function in the child; its return value is
-- the child's exit code
local child <close> = assert(ipc.spawn(function()
  r:close()
  -- some work worth waiting for
  local sum = 0
  for i = 1, 1000000 do sum = sum + i end
  assert(w:write("done") == 4)
  io.write(("child %d: summed to %d, told the parent\n"):format(ipc.getpid(), sum))
  return 0
end))
print(("parent %d: started child %d, waiting for its answer"):format(ipc.getpid(), child.pid))

-- the parent keeps no write end open, so a dead child would give end of stream
w:close()
local answer = assert(r:read(80, 10), "no answer from the child")
print("parent read: " .. answer)
assert(answer == "done")

local how, code = child:wait(10)
assert(how == "exited" and code == 0, ("child ended %s %s"):format(how, code))
print("parent: child exited with code " .. code)
