--- task_sockpair.lua - the cost of waiting in a task on a socket: round trip
-- of a 64-byte message over a stream socketpair between a task in ipc.loop
-- and a forked child that echoes it blocking, beside the same round trip
-- with the parent blocking, alternating in one program so that both see the
-- same machine.  bench/task_sockpair.c is the raw C blocking baseline.
-- Run through bench/run.sh (it sets LUA_PATH/LUA_CPATH and builds benchclock).
-- BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
local ipc = require "lipc"
local clock = require "benchclock"
local bench = require "benchutil"

local iters, warm = bench.counts()
local total = warm + iters
local ns = clock.ns
local MSG = ("x"):rep(64)

--- The round trips of one run (blocking, or in a task); a list of ns.
local function round_trips(in_task)
  local a, b = assert(ipc.socketpair("stream"))
  local pid = bench.echo_child(b, b, 64, { a })
  local rtt = {}
  local function body()
    local send, recv = a.send, a.recv
    for i = 1, total do
      local t0 = ns()
      send(a, MSG)
      local m = recv(a, 64)
      local t1 = ns()
      if #m < 64 then m = m .. assert(a:read(64 - #m)) end
      assert(m == MSG)
      if i > warm then rtt[i - warm] = t1 - t0 end
    end
  end
  bench.run(body, in_task)
  a:close()
  bench.reap(pid)
  return rtt
end

bench.task_vs_blocking("task_sock", round_trips)
