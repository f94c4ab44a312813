--- task_pingpong.lua - the cost of waiting in a task: round trip through two
-- eventfds between a task in ipc.loop and a forked child that blocks, beside
-- the same round trip with the parent blocking (bench/eventfd_pingpong.lua),
-- measured in one program, alternating, so that both see the same machine.
-- bench/task_pingpong.c is the raw C blocking baseline.  Also measures how
-- late a task wakes up after an eventfd add and after a timer expiry.
-- Run through bench/run.sh (it sets LUA_PATH/LUA_CPATH and builds benchclock).
-- BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
local ipc = require "lipc"
local clock = require "benchclock"
local bench = require "benchutil"

local iters, warm = bench.counts()
local total = warm + iters
local ns = clock.ns

--- Fork the echo child: takes ping, adds 1 to pong, total times (blocking).
local function echo_child(ping, pong)
  local pid = assert(ipc.fork())
  if pid == 0 then
    local take, add = ping.take, pong.add
    for _ = 1, total do
      if not take(ping) then ipc.exit(1) end
      if not add(pong, 1) then ipc.exit(1) end
    end
    ipc.exit(0)
  end
  return pid
end

--- The round trips of the parent's loop body run (blocking, or in a task).
local function round_trips(in_task)
  local ping <close> = assert(ipc.eventfd(0))
  local pong <close> = assert(ipc.eventfd(0))
  local pid = echo_child(ping, pong)
  local rtt = {}
  local function body()
    local take, add = pong.take, ping.add
    for i = 1, total do
      local t0 = ns()
      add(ping, 1)
      local v = take(pong)
      local t1 = ns()
      assert(v == 1)
      if i > warm then rtt[i - warm] = t1 - t0 end
    end
  end
  bench.run(body, in_task)
  bench.reap(pid)
  return rtt
end

local median = bench.median
bench.task_vs_blocking("task", round_trips)

-- wake-up latency of a task: a forked child adds to an eventfd at a time it
-- writes first; the task notes when take returns
do
  local n = 200
  local e <close> = assert(ipc.eventfd(0))
  local stamp = ipc.shm.anonymous(8 * (n + 1))
  local go <close> = assert(ipc.eventfd(0, { semaphore = true }))
  local pid = assert(ipc.fork())
  if pid == 0 then
    for i = 1, n do
      go:take()
      ipc.sleep(0.0005)   -- let the parent's task reach its wait
      stamp:store(8 * i, ns())
      e:add(1)
    end
    ipc.exit(0)
  end
  local lat = {}
  bench.run(function()
    for i = 1, n do
      go:add(1)
      e:take()
      lat[i] = ns() - stamp:load(8 * i)
    end
  end, true)
  bench.reap(pid)
  stamp:close()
  print(("metric task_wake_eventfd_median %.3f us lower lipc"):format(median(lat) / 1e3))
end

-- timer: how late a task wakes after a 2 ms timer expiry (and a blocking wait)
do
  local n = 200
  local function late(in_task)
    local lat = {}
    local function body()
      for i = 1, n do
        local t0 = ns()
        local tm <close> = ipc.timer(0.002)
        tm:wait()
        lat[i] = ns() - t0 - 2e6
      end
    end
    bench.run(body, in_task)
    return median(lat)
  end
  print(("metric task_wake_timer_late %.3f us lower lipc"):format(late(true) / 1e3))
  print(("metric task_wake_timer_late %.3f us lower blocking"):format(late(false) / 1e3))
  local function sleep_late(in_task)
    local lat = {}
    local function body()
      for i = 1, n do
        local t0 = ns()
        ipc.sleep(0.002)
        lat[i] = ns() - t0 - 2e6
      end
    end
    bench.run(body, in_task)
    return median(lat)
  end
  print(("metric task_wake_sleep_late %.3f us lower lipc"):format(sleep_late(true) / 1e3))
  print(("metric task_wake_sleep_late %.3f us lower blocking"):format(sleep_late(false) / 1e3))
end
