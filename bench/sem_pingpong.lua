--- sem_pingpong.lua - the lipc side of bench/sem_pingpong.c: round trip
-- between a parent and its forked child through two unnamed process-shared
-- semaphores (ipc.sem.new) in an anonymous region.  Run through bench/run.sh.
-- BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
local ipc = require "lipc"
local clock = require "benchclock"
local bench = require "benchutil"

local iters, warm = bench.counts()
local total = warm + iters

local region <close> = assert(ipc.shm.anonymous(4096))
local ping <close> = assert(ipc.sem.new(region, 0, 0))
local pong <close> = assert(ipc.sem.new(region, 64, 0))
local wait, post = ping.wait, ping.post

local pid = assert(ipc.fork())
if pid == 0 then
  for _ = 1, total do
    if not (wait(ping) and post(pong)) then ipc.exit(1) end
  end
  ipc.exit(0)
end

local ns = clock.ns
local rtt = {}
for i = 1, total do
  local t0 = ns()
  post(ping)
  wait(pong)
  local t1 = ns()
  if i > warm then rtt[i - warm] = t1 - t0 end
end
bench.reap(pid)

bench.report_rtt("sem", rtt, "<=1.15")
