--- sock_tcp_bulk.lua - the lipc side of bench/sock_tcp_bulk.c: TCP
-- throughput on 127.0.0.1 in 64 KiB chunks, a forked child sending, the
-- parent receiving until end of stream; the clock starts after 64 MiB.
-- BENCH_BULK_MB: MiB to move (default 2048).
local ipc = require "lipc"
local clock = require "benchclock"

local CHUNK = 65536
local WARM = 64 << 20
local total = (tonumber(os.getenv("BENCH_BULK_MB")) or 2048) << 20

local srv = assert(ipc.listen("tcp://127.0.0.1:0"))
local pid = assert(ipc.fork())
if pid == 0 then
  local c = assert(ipc.connect(srv:address(), 5))
  srv:close()
  local chunk = ("x"):rep(CHUNK)
  local send = c.send
  for _ = 1, total // CHUNK do
    if send(c, chunk) ~= CHUNK then ipc.exit(1) end
  end
  ipc.exit(0)
end
local s = assert(srv:accept(10))
srv:close()

local recv = s.recv
local got, timed, t0 = 0, 0, nil
while true do
  local data = recv(s, CHUNK)
  if not data then break end
  local n = #data
  got = got + n
  if t0 then timed = timed + n elseif got >= WARM then t0 = clock.ns() end
end
local t1 = clock.ns()
local how, code = ipc.wait(pid)
assert(how == "exited" and code == 0 and got == total, "child failed")
print(("metric sock_tcp_bulk %.1f MB/s higher"):format(timed / 1e6 / ((t1 - t0) / 1e9)))
print("target sock_tcp_bulk >=0.85")
