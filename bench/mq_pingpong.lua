--- mq_pingpong.lua - the lipc side of bench/mq_pingpong.c: round trip of a
-- 64-byte message over two POSIX message queues between a parent and its
-- forked child.  Run through bench/run.sh (it sets LUA_PATH/LUA_CPATH and
-- builds benchclock).
-- BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
local ipc = require "lipc"
local clock = require "benchclock"
local bench = require "benchutil"

local MSG = 64
local iters, warm = bench.counts()

local to_child <close> = assert(ipc.mq.open(nil, { maxmsg = 10, msgsize = MSG }))
local to_parent <close> = assert(ipc.mq.open(nil, { maxmsg = 10, msgsize = MSG }))
-- as the C version: no names left behind even if a run is killed
assert(to_child:unlink())
assert(to_parent:unlink())
local pid = assert(ipc.fork())
if pid == 0 then  -- echo until an empty message
  local receive, send = to_child.receive, to_parent.send
  while true do
    local m = receive(to_child)
    if not m or m == "" then ipc.exit(m and 0 or 1) end
    if not send(to_parent, m) then ipc.exit(1) end
  end
end

local ns = clock.ns
local msg = ("x"):rep(MSG)
local send, receive = to_child.send, to_parent.receive
local rtt = {}
for i = 1, warm + iters do
  local t0 = ns()
  assert(send(to_child, msg))
  local back = receive(to_parent)
  local t1 = ns()
  assert(back and #back == MSG)
  if i > warm then rtt[i - warm] = t1 - t0 end
end
assert(to_child:send(""))
bench.reap(pid)

bench.report_rtt("mq", rtt, "<=1.15")
