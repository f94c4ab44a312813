--- poller_wakeup.lua - the lipc side of bench/poller_wakeup.c: a 64-byte
-- ping-pong over two pipes with a forked echo child, the parent waiting for
-- the answer in ipc.poller:wait on a set holding the answer pipe plus 10,
-- then 1000, idle pipes.  The two medians should be about equal.  The same
-- again with the active pair made of two eventfds (metrics poller_efd_*),
-- which isolates the poller from the pipe layer.
-- Run through bench/run.sh (it sets LUA_PATH/LUA_CPATH and builds benchclock).
-- BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
local ipc = require "lipc"
local clock = require "benchclock"
local bench = require "benchutil"

local MSG = 64
local iters, warm = bench.counts()

--- A poller holding the read ends of `idle` idle pipes, and the pipes' ends.
local function idle_poller(idle)
  local p = ipc.poller()
  local idle_ends = {}
  for i = 1, idle do
    local r, w = assert(ipc.pipe())
    idle_ends[i] = { r, w }
    assert(p:add(r, "r"))
  end
  return p, idle_ends
end

--- One measurement with `idle` idle pipes registered.
local function run(idle)
  local p, idle_ends = idle_poller(idle)
  local to_child_r, to_child_w = assert(ipc.pipe())
  local to_parent_r, to_parent_w = assert(ipc.pipe())
  assert(p:add(to_parent_r, "r"))
  local pid = bench.echo_child(to_child_r, to_parent_w, MSG, { to_child_w, to_parent_r })

  local ns = clock.ns
  local msg = ("x"):rep(MSG)
  local write, read, wait = to_child_w.write, to_parent_r.read, p.wait
  local rtt = {}
  for i = 1, warm + iters do
    local t0 = ns()
    write(to_child_w, msg)
    local f, s = wait(p)
    local obj = f(s)
    local back = read(obj, MSG)
    local t1 = ns()
    assert(obj == to_parent_r and #back == MSG)
    if i > warm then rtt[i - warm] = t1 - t0 end
  end
  to_child_w:close()
  bench.reap(pid)
  to_parent_r:close()
  for _, e in ipairs(idle_ends) do e[1]:close(); e[2]:close() end
  p:close()
  return rtt
end

--- The same with the active pair made of two eventfds.
local function run_efd(idle)
  local p, idle_ends = idle_poller(idle)
  local to_child, to_parent = assert(ipc.eventfd(0)), assert(ipc.eventfd(0))
  assert(p:add(to_parent, "r"))
  local pid = assert(ipc.fork())
  if pid == 0 then
    local take, add = to_child.take, to_parent.add
    for _ = 1, warm + iters do
      if not take(to_child) or not add(to_parent, 1) then ipc.exit(1) end
    end
    ipc.exit(0)
  end
  local ns = clock.ns
  local add, take, wait = to_child.add, to_parent.take, p.wait
  local rtt = {}
  for i = 1, warm + iters do
    local t0 = ns()
    add(to_child, 1)
    local f, s = wait(p)
    local obj = f(s)
    local v = take(obj)
    local t1 = ns()
    assert(obj == to_parent and v == 1)
    if i > warm then rtt[i - warm] = t1 - t0 end
  end
  bench.reap(pid)
  to_child:close(); to_parent:close()
  for _, e in ipairs(idle_ends) do e[1]:close(); e[2]:close() end
  p:close()
  return rtt
end

local report = bench.report_rtt
report("poller_idle10", run(10))
report("poller_idle1000", run(1000))
report("poller_efd_idle10", run_efd(10))
report("poller_efd_idle1000", run_efd(1000))
print("target poller_idle10_rtt_median <=1.15")
print("target poller_idle1000_rtt_median <=1.15")
print("target poller_efd_idle10_rtt_median <=1.15")
print("target poller_efd_idle1000_rtt_median <=1.15")
