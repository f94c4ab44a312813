--- pipe_pingpong.lua - the lipc side of bench/pipe_pingpong.c: round trip of
-- a 64-byte message over two pipes between a parent and its forked child.
-- Run through bench/run.sh (it sets LUA_PATH/LUA_CPATH and builds benchclock).
-- BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
local ipc = require "lipc"
local clock = require "benchclock"
local bench = require "benchutil"

local MSG = 64
local iters, warm = bench.counts()

local to_child_r, to_child_w = assert(ipc.pipe())
local to_parent_r, to_parent_w = assert(ipc.pipe())
local pid = bench.echo_child(to_child_r, to_parent_w, MSG, { to_child_w, to_parent_r })

local ns = clock.ns
local msg = ("x"):rep(MSG)
local write, read = to_child_w.write, to_parent_r.read
local rtt = {}
for i = 1, iters do rtt[i] = 0 end   -- allocated up front, as the C's malloc
for i = 1, warm + iters do
  local t0 = ns()
  assert(write(to_child_w, msg) == MSG)
  local back = read(to_parent_r, MSG)
  local t1 = ns()
  assert(back and #back == MSG)
  if i > warm then rtt[i - warm] = t1 - t0 end
end
to_child_w:close()
assert(to_parent_r:read(MSG) == nil)
bench.reap(pid)
to_parent_r:close()

bench.report_rtt("pipe", rtt, "<=1.15")
