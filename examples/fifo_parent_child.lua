-- A named pipe (FIFO) between parent and child: the FIFO is a file name, so
-- each side opens it by path; the parent writes, the child reads.
-- Made with mode 0600 (owner only) in a private temp dir, removed at the end.
-- Run from the repository root: lua5.4 examples/fifo_parent_child.lua
local ipc = require "lipc"

-- a private directory, removed (once empty) when `dir` goes out of scope
local dir <close> = setmetatable({ path = ("/tmp/lipc-example.%d"):format(ipc.getpid()) },
  { __close = function(d) os.remove(d.path) end })
assert(os.execute("mkdir -m 700 " .. dir.path), "cannot make " .. dir.path)
local path = dir.path .. "/my_fifo"

-- the FIFO object owns the name: closing it (or <close>) unlinks it
local fifo <close> = assert(ipc.mkfifo(path, { mode = "600" }))
print("created " .. tostring(fifo))

local pid = assert(ipc.fork())
if pid == 0 then
  -- opening for reading waits until a writer opens too (at most 10 s)
  local r <close> = assert(ipc.fifo.open(path, "r", 10))
  local msg = assert(r:read("a"))
  print("child received: " .. msg)
  ipc.exit(msg == "Hello from parent" and 0 or 1)
end

local w <close> = assert(ipc.fifo.open(path, "w", 10))
assert(w:write("Hello from parent") == 17)
w:close()
local how, code = ipc.wait(pid, 10)
assert(how == "exited" and code == 0, ("child ended %s %s"):format(how, code))
print("parent: child exited with code 0")
