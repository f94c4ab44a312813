-- Reading a FIFO byte by byte until end of stream: a shell started with
-- ipc.exec writes "Hello World" into the FIFO with printf and exits; the
-- reader echoes each byte as it comes and stops at end of stream.
-- Run from the repository root: lua5.4 examples/fifo_chars.lua
local ipc = require "lipc"

local dir <close> = setmetatable({ path = ("/tmp/lipc-example.%d"):format(ipc.getpid()) },
  { __close = function(d) os.remove(d.path) end })
assert(os.execute("mkdir -m 700 " .. dir.path), "cannot make " .. dir.path)
local path = dir.path .. "/named_pipe"

-- the tutorial asks for 0644; the owner alone needs it, so 0600
local fifo <close> = assert(ipc.mkfifo(path, { mode = "600" }))
print("reader: made " .. tostring(fifo))

-- an unrelated writer: sh, with the path as its $1
local sh <close> = assert(ipc.exec{ "sh", "-c", 'printf "Hello World" > "$1"', "sh", path })

local r <close> = assert(ipc.fifo.open(path, "r", 10))
io.write("reader: ")
local bytes = {}
while true do
  local c = r:read(1, 10)
  if c == nil then break end        -- the writer closed: end of stream
  io.write(c)
  bytes[#bytes + 1] = c
end
io.write("\n")
print(("reader: end of stream after %d bytes"):format(#bytes))
assert(table.concat(bytes) == "Hello World")

local how, code = sh:wait(10)
assert(how == "exited" and code == 0, ("writer ended %s %s"):format(how, code))
