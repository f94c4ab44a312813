--- channel_rtt.lua - round trip of a representative nested table through
-- ipc.channel between a parent and its forked child (the child echoes each
-- value: decode + encode on both sides), over a stream socketpair, over a
-- shared-memory ring (the default adaptive spin, and futex waits only) and
-- over two pipes.  bench/channel_rtt.py does the same work with Python's
-- multiprocessing.Pipe and an equivalent dict (pickle).
-- Run through bench/run.sh (it sets LUA_PATH/LUA_CPATH and builds benchclock).
-- BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
local ipc = require "lipc"
local clock = require "benchclock"

local iters = tonumber(os.getenv("BENCH_ITERS")) or 20000
local warm = tonumber(os.getenv("BENCH_WARMUP")) or 2000

local VALUE = { id = 123, name = "widget", tags = { "a", "b", "c" }, price = 9.99,
                dims = { w = 1.5, h = 2, d = 0.25 }, ok = true, items = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 } }

local function bench(kind, opts, key)
  local a, b = assert(ipc.channel.pair(kind, opts))
  local pid = assert(ipc.fork())
  if pid == 0 then
    a:close()
    local recv, send = b.recv, b.send
    while true do
      local v, err = recv(b)
      if err then ipc.exit(err == "closed" and 0 or 1) end
      if not send(b, v) then ipc.exit(1) end
    end
  end
  b:close()
  local ns = clock.ns
  local recv, send = a.recv, a.send
  local rtt = {}
  for i = 1, warm + iters do
    local t0 = ns()
    send(a, VALUE)
    local back = recv(a)
    local t1 = ns()
    if i > warm then rtt[i - warm] = t1 - t0 end
    if i == 1 then assert(back.dims.d == 0.25 and back.items[10] == 10 and back.tags[3] == "c") end
  end
  a:close()
  local how, code = ipc.wait(pid, 10)
  assert(how == "exited" and code == 0, "child failed")
  table.sort(rtt)
  key = key or kind == "stream" and "socketpair" or kind
  print(("metric channel_rtt_%s_median %.3f us lower"):format(key, rtt[iters // 2 + 1] / 1e3))
  print(("metric channel_rtt_%s_p99 %.3f us lower"):format(key, rtt[math.ceil(iters * 0.99)] / 1e3))
end

print(("# %d bytes encoded"):format(#ipc.encode(VALUE)))
bench("stream")
bench("ring")                                    -- the default: spin = "auto" (doc/ring.md)
bench("ring", { spin = 0 }, "ring_nospin")       -- futex waits only
bench("pipe")
