--- ring_spin.lua - ring round trips (64-byte message, parent and forked
-- child over two lipc.ring objects, as bench/ring_pingpong.lua) with the
-- three spin settings in one run: spin = 0 (futex only), spin = 2000 polls
-- (fixed) and spin = "auto" (adaptive: doc/ring.md).  Run it pinned to one
-- CPU (bench/run.sh ring_spin: both processes share it) and unpinned
-- (BENCH_PIN=0 bench/run.sh ring_spin).
-- BENCH_ITERS (default 20000) timed round trips per setting, taken in
-- ROUNDS rounds that alternate the settings (so that the load of the
-- machine weighs on all three alike), each after BENCH_WARMUP / ROUNDS
-- untimed ones; RING_FIXED (2000) the polls of the fixed setting.
local ipc = require "lipc"
local clock = require "benchclock"
local bench = require "benchutil"

local MSG = 64
local iters, warm = bench.counts()
local fixed = tonumber(os.getenv("RING_FIXED")) or 2000

local ROUNDS = 5

local function run(spin, rtt, n, w)
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
  for i = 1, w + n do
    local t0 = ns()
    send(to_child, msg)
    local back = recv(to_parent)
    local t1 = ns()
    assert(back and #back == MSG)
    if i > w then rtt[#rtt + 1] = t1 - t0 end
  end
  assert(to_child:send(""))
  bench.reap(pid)
  to_child:close()
  to_parent:close()
end

local settings = { { "off", 0 }, { "fixed", fixed }, { "auto", "auto" } }
local rtts = { {}, {}, {} }
for _ = 1, ROUNDS do
  for k, set in ipairs(settings) do
    run(set[2], rtts[k], iters // ROUNDS, warm // ROUNDS)
  end
end
for k, set in ipairs(settings) do bench.report_rtt("ring_spin_" .. set[1], rtts[k]) end
