--- sem_pingpong.lua - the lipc side of bench/sem_pingpong.c: round trip
-- between a parent and its forked child through two unnamed process-shared
-- semaphores (ipc.sem.new) in an anonymous region.  Run through bench/run.sh.
-- BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
local ipc = require "lipc"
local clock = require "benchclock"

local iters = tonumber(os.getenv("BENCH_ITERS")) or 20000
local warm = tonumber(os.getenv("BENCH_WARMUP")) or 2000
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
local how, code = ipc.wait(pid)
assert(how == "exited" and code == 0, "child failed")

table.sort(rtt)
print(("metric sem_rtt_median %.3f us lower"):format(rtt[iters // 2 + 1] / 1e3))
print(("metric sem_rtt_p99 %.3f us lower"):format(rtt[math.ceil(iters * 0.99)] / 1e3))
print("target sem_rtt_median <=1.15")
