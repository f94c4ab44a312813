-- End of stream: the parent writes "Hello World!" and closes its write end;
-- the child reads one byte at a time until read returns nil (end of stream),
-- echoing each byte, and the parent waits for it.
-- Run from the repository root: lua5.4 examples/pipe_eof_chars.lua
local ipc = require "lipc"

local pr, pw = assert(ipc.pipe())
local r <close> = pr
local w <close> = pw

local pid = assert(ipc.fork())
if pid == 0 then
  -- child: close the write end, or end of stream never comes (this process
  -- would itself still be a writer)
  w:close()
  io.write("child: ")
  local count = 0
  while true do
    local c = r:read(1)
    if c == nil then break end      -- every writer has closed
    io.write(c)
    count = count + 1
  end
  io.write("\n")
  io.write(("child: end of stream after %d bytes\n"):format(count))
  ipc.exit(count == 12 and 0 or 1)
end

r:close()
assert(w:write("Hello World!") == 12)
w:close()      -- the reader sees end of stream after the 12 bytes
local how, code = ipc.wait(pid, 10)
assert(how == "exited" and code == 0, ("child ended %s %s"):format(how, code))
print("parent: child done")
