--- mq_pingpong.lua - the lipc side of bench/mq_pingpong.c: round trip of a
-- 64-byte message over two POSIX message queues between a parent and its
-- forked child.  Run through bench/run.sh (it sets LUA_PATH/LUA_CPATH and
-- builds benchclock).
-- BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
local ipc = require "lipc"
local clock = require "benchclock"

local MSG = 64
local iters = tonumber(os.getenv("BENCH_ITERS")) or 20000
local warm = tonumber(os.getenv("BENCH_WARMUP")) or 2000

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
local how, code = ipc.wait(pid)
assert(how == "exited" and code == 0, "child failed")

table.sort(rtt)
print(("metric mq_rtt_median %.3f us lower"):format(rtt[iters // 2 + 1] / 1e3))
print(("metric mq_rtt_p99 %.3f us lower"):format(rtt[math.ceil(iters * 0.99)] / 1e3))
print("target mq_rtt_median <=1.15")
