-- A pipe from parent to child: the parent writes a greeting, its child reads it.
-- The classic first pipe example: pipe(), fork(), parent writes, child reads.
-- Run from the repository root: lua5.4 examples/pipe_parent_to_child.lua
local ipc = require "lipc"

local pr, pw = assert(ipc.pipe())
local r <close> = pr
local w <close> = pw
print("parent: created " .. tostring(r) .. " and " .. tostring(w))

local pid = assert(ipc.fork())
if pid == 0 then
  -- child: it only reads, so it closes its copy of the write end first
  w:close()
  local msg = r:read(100)
  print("child received: " .. tostring(msg))
  ipc.exit(msg == "Hello from parent" and 0 or 1)
end

-- parent: it only writes
r:close()
local n = assert(w:write("Hello from parent"))
print(("parent: wrote %d bytes"):format(n))
w:close()   -- the child would see end of stream after the message

local how, code = ipc.wait(pid, 10)
assert(how == "exited" and code == 0, ("child ended %s %s"):format(how, code))
print("parent: child exited with code 0")
