--- pipe_pingpong.lua - the lipc side of bench/pipe_pingpong.c: round trip of
-- a 64-byte message over two pipes between a parent and its forked child.
-- Run through bench/run.sh (it sets LUA_PATH/LUA_CPATH and builds benchclock).
-- BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
local ipc = require "lipc"
local clock = require "benchclock"

local MSG = 64
local iters = tonumber(os.getenv("BENCH_ITERS")) or 20000
local warm = tonumber(os.getenv("BENCH_WARMUP")) or 2000

local to_child_r, to_child_w = assert(ipc.pipe())
local to_parent_r, to_parent_w = assert(ipc.pipe())
local pid = assert(ipc.fork())
if pid == 0 then
  to_child_w:close(); to_parent_r:close()
  local read, write = to_child_r.read, to_parent_w.write
  while true do
    local m = read(to_child_r, MSG)
    if not m then ipc.exit(0) end
    if not write(to_parent_w, m) then ipc.exit(1) end
  end
end
to_child_r:close(); to_parent_w:close()

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
local how, code = ipc.wait(pid)
assert(how == "exited" and code == 0, "child failed")
to_parent_r:close()

table.sort(rtt)
print(("metric pipe_rtt_median %.3f us lower"):format(rtt[iters // 2 + 1] / 1e3))
print(("metric pipe_rtt_p99 %.3f us lower"):format(rtt[math.ceil(iters * 0.99)] / 1e3))
print("target pipe_rtt_median <=1.15")
