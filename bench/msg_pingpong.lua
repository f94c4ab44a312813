--- msg_pingpong.lua - the lipc side of bench/msg_pingpong.c: round trip of a
-- 64-byte message over one System V message queue between a parent and its
-- forked child, type 1 towards the child and type 2 back.  Run through
-- bench/run.sh (it sets LUA_PATH/LUA_CPATH and builds benchclock).
-- BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
local ipc = require "lipc"
local clock = require "benchclock"
local bench = require "benchutil"

local MSG = 64
local iters, warm = bench.counts()

local q <close> = assert(ipc.msg.get(ipc.IPC_PRIVATE))
local pid = assert(ipc.fork())
if pid == 0 then  -- echo type 1 as type 2 until an empty message
  local receive, send = q.receive, q.send
  while true do
    local m = receive(q, 1)
    if not m or m == "" then ipc.exit(m and 0 or 1) end
    if not send(q, 2, m) then ipc.exit(1) end
  end
end

local ns = clock.ns
local msg = ("x"):rep(MSG)
local send, receive = q.send, q.receive
local rtt = {}
for i = 1, warm + iters do
  local t0 = ns()
  assert(send(q, 1, msg))
  local back = receive(q, 2)
  local t1 = ns()
  assert(back and #back == MSG)
  if i > warm then rtt[i - warm] = t1 - t0 end
end
assert(q:send(1, ""))
bench.reap(pid)

bench.report_rtt("msg", rtt, "<=1.15")
