-- A FIFO between two unrelated programs: this script makes the FIFO and reads
-- it; a separate lua5.4 process, started with ipc.exec and knowing nothing but
-- the path (passed in its environment), opens it with plain io.open and writes.
-- Run from the repository root: lua5.4 examples/fifo_unrelated.lua
local ipc = require "lipc"

local dir <close> = setmetatable({ path = ("/tmp/lipc-example.%d"):format(ipc.getpid()) },
  { __close = function(d) os.remove(d.path) end })
assert(os.execute("mkdir -m 700 " .. dir.path), "cannot make " .. dir.path)
local path = dir.path .. "/myfifo"
local fifo <close> = assert(ipc.mkfifo(path))     -- mode 0600 by default
print("reader: made " .. tostring(fifo))

-- the writer: another program entirely, no lipc in it
local writer_code = [[
  local f = assert(io.open(os.getenv("FIFO_PATH"), "w"))
  assert(f:write("Hello from FIFO!"))
  assert(f:close())
  io.stderr:write("writer: wrote 16 bytes and closed\n")
]]
local interpreter = arg[-1] or "lua5.4"
local writer <close> = assert(ipc.exec{ interpreter, "-e", writer_code, env = { FIFO_PATH = path } })
print(("reader: started writer process %d"):format(writer.pid))

-- open blocks until the writer has opened its end (10 s at most)
local r <close> = assert(ipc.fifo.open(path, "r", 10))
local msg = assert(r:read("a", 10))       -- everything until the writer closes
print("reader received: " .. msg)
assert(msg == "Hello from FIFO!")

local how, code = writer:wait(10)
assert(how == "exited" and code == 0, ("writer ended %s %s"):format(how, code))
print("reader: writer exited with code 0")
