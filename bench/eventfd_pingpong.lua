--- eventfd_pingpong.lua - the lipc side of bench/eventfd_pingpong.c: round
-- trip through two eventfds between a parent and its forked child.
-- Run through bench/run.sh (it sets LUA_PATH/LUA_CPATH and builds benchclock).
-- BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
local ipc = require "lipc"
local clock = require "benchclock"

local iters = tonumber(os.getenv("BENCH_ITERS")) or 20000
local warm = tonumber(os.getenv("BENCH_WARMUP")) or 2000
local total = warm + iters

local ping = assert(ipc.eventfd(0))
local pong = assert(ipc.eventfd(0))
local pid = assert(ipc.fork())
if pid == 0 then
  local take, add = ping.take, pong.add
  for _ = 1, total do
    if not take(ping) then ipc.exit(1) end
    if not add(pong, 1) then ipc.exit(1) end
  end
  ipc.exit(0)
end

local ns = clock.ns
local take, add = pong.take, ping.add
local rtt = {}
for i = 1, total do
  local t0 = ns()
  add(ping, 1)
  local v = take(pong)
  local t1 = ns()
  assert(v == 1)
  if i > warm then rtt[i - warm] = t1 - t0 end
end
local how, code = ipc.wait(pid)
assert(how == "exited" and code == 0, "child failed")
ping:close()
pong:close()

table.sort(rtt)
print(("metric eventfd_rtt_median %.3f us lower"):format(rtt[iters // 2 + 1] / 1e3))
print(("metric eventfd_rtt_p99 %.3f us lower"):format(rtt[math.ceil(iters * 0.99)] / 1e3))
print("target eventfd_rtt_median <=1.15")
