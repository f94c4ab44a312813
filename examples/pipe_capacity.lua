-- How much a pipe holds: a nonblocking writer counts bytes until the kernel
-- refuses more (EAGAIN), which is the pipe's capacity; a blocking writer
-- would wait there, so a write with a timeout reports "timeout".
-- Run from the repository root: lua5.4 examples/pipe_capacity.lua
local ipc = require "lipc"

local pr, pw = assert(ipc.pipe{ nonblock = true })
local r <close> = pr
local w <close> = pw

local msg = ("."):rep(31) .. "\0"   -- 32 bytes, as in the tutorial
local total = 0
while true do
  local n, err, errno = w:write(msg)
  if not n then
    -- a full nonblocking pipe: EAGAIN (or a "timeout" for a zero wait)
    assert(errno == ipc.errno.EAGAIN or errno == ipc.errno.ETIMEDOUT, err)
    print(("write %d refused: %s (errno %d)"):format(total // #msg + 1, err, errno))
    break
  end
  total = total + n
  if n < #msg then break end                  -- a short write: full too
  if total % 16384 == 0 then print(("%6d bytes buffered"):format(total)) end
end
print(("pipe capacity: %d bytes (%d KiB)"):format(total, total // 1024))

-- In blocking mode the same write would wait for a reader; with a timeout
-- it gives up with nil, "timeout", ETIMEDOUT.
assert(w:setnonblock(false))
local ok, err, errno = w:write(msg, 0.2)
assert(ok == nil and errno == ipc.errno.ETIMEDOUT, "expected a timeout")
print("blocking write with a 0.2 s timeout: " .. err)

-- Reading makes room again: drain everything that was buffered.
local drained = 0
while drained < total do
  local chunk = assert(r:read(65536, 1))
  drained = drained + #chunk
end
assert(drained == total)
print(("drained %d bytes; the writer can continue: wrote %d more"):format(drained, assert(w:write(msg))))
