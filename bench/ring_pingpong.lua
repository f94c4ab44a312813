--- ring_pingpong.lua - the lipc side of bench/ring_pingpong.c: round trip of
-- a 64-byte message between a parent and its forked child over two
-- lipc.ring objects (shared memory, futex wake-ups).
-- Run through bench/run.sh (it sets LUA_PATH/LUA_CPATH and builds benchclock).
-- BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000);
-- RING_SPIN (default 0) polls before sleeping.
local ipc = require "lipc"
local clock = require "benchclock"
local bench = require "benchutil"

local MSG = 64
local iters, warm = bench.counts()
local spin = tonumber(os.getenv("RING_SPIN")) or 0

local to_child = assert(ipc.ring.create(4096, { spin = spin }))
local to_parent = assert(ipc.ring.create(4096, { spin = spin }))
local pid = assert(ipc.fork())
if pid == 0 then
  local recv, send = to_child.recv, to_parent.send
  while true do
    local m = recv(to_child)
    if not m or m == "" then ipc.exit(0) end
    if not send(to_parent, m) then ipc.exit(1) end
  end
end

local ns = clock.ns
local msg = ("x"):rep(MSG)
local send, recv = to_child.send, to_parent.recv
local rtt = {}
for i = 1, warm + iters do
  local t0 = ns()
  send(to_child, msg)
  local back = recv(to_parent)
  local t1 = ns()
  assert(back and #back == MSG)
  if i > warm then rtt[i - warm] = t1 - t0 end
end
assert(to_child:send(""))
bench.reap(pid)
to_child:close()
to_parent:close()

bench.report_rtt("ring", rtt, "<=1.5")
