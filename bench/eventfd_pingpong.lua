--- eventfd_pingpong.lua - the lipc side of bench/eventfd_pingpong.c: round
-- trip through two eventfds between a parent and its forked child.
-- Run through bench/run.sh (it sets LUA_PATH/LUA_CPATH and builds benchclock).
-- BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
local ipc = require "lipc"
local clock = require "benchclock"
local bench = require "benchutil"

local iters, warm = bench.counts()
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
bench.reap(pid)
ping:close()
pong:close()

bench.report_rtt("eventfd", rtt, "<=1.15")
