--- pipe_bulk.lua - the lipc side of bench/pipe_bulk.c: bulk throughput
-- through a pipe in 64 KiB chunks, a forked child writing, the parent
-- reading until end of stream; the clock starts after the first 64 MiB.
-- BENCH_BULK_MB: MiB to move (default 2048).
local ipc = require "lipc"
local clock = require "benchclock"

local CHUNK = 65536
local WARM = 64 << 20
local total = (tonumber(os.getenv("BENCH_BULK_MB")) or 2048) << 20

local r, w = assert(ipc.pipe())
local pid = assert(ipc.fork())
if pid == 0 then
  r:close()
  local chunk = ("x"):rep(CHUNK)
  local write = w.write
  for _ = 1, total // CHUNK do
    if write(w, chunk) ~= CHUNK then ipc.exit(1) end
  end
  ipc.exit(0)
end
w:close()

local read = r.read
local got, timed, t0 = 0, 0, nil
while true do
  local data = read(r, CHUNK)
  if not data then break end
  local n = #data
  got = got + n
  if got >= WARM then
    if not t0 then t0 = clock.now() else timed = timed + n end
  end
end
local secs = clock.now() - t0
r:close()
local how, code = ipc.wait(pid)
assert(how == "exited" and code == 0 and got == total, "writer failed or short")
print(("metric pipe_bulk_throughput %.1f MB/s higher"):format(timed / 1e6 / secs))
print("target pipe_bulk_throughput >=0.85")
