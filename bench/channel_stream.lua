--- channel_stream.lua - one-way stream of small Lua tables (about 64 bytes
-- encoded) from a forked child to its parent over ipc.channel.pair()
-- (two pipes), with batching (`batch = true`: many values per write) and
-- without. bench/channel_stream.c is the raw C baseline: one write and
-- one read per 64-byte message on a pipe; bench/channel_stream.py is
-- Python's multiprocessing.Queue with the same dict.
-- Values per second, parent's view: from the fork to the end of the stream,
-- every value decoded and checked. BENCH_VALUES (default 1000000; the
-- unbatched run sends a fifth of them).
local ipc = require "lipc"
local clock = require "benchclock"

local N = tonumber(os.getenv("BENCH_VALUES")) or 1000000

local VALUE = { seq = 0, host = "node-17", metric = "cpu.user", value = 0.375, unit = "%", ok = true }

local function run(opts, n)
  local a, b = assert(ipc.channel.pair("pipe", opts))
  local t0 = clock.now()
  local pid = assert(ipc.fork())
  if pid == 0 then
    a:close()
    local send, v = b.send, VALUE
    for i = 1, n do
      v.seq = i
      if not send(b, v) then ipc.exit(1) end
    end
    b:close()                    -- flushes what is still batched
    ipc.exit(0)
  end
  b:close()
  local recv, count = a.recv, 0
  while true do
    local v, err = recv(a)
    if err then assert(err == "closed", err); break end
    count = count + 1
    if v.seq ~= count then error(("value %d arrived as %s"):format(count, tostring(v.seq))) end
  end
  local secs = clock.now() - t0
  a:close()
  local how, code = ipc.wait(pid)
  assert(how == "exited" and code == 0 and count == n, "sender failed or short")
  return n / secs
end

print(("# %d bytes encoded"):format(#ipc.encode(VALUE)))
print(("metric channel_stream_values %.0f values/s higher"):format(run({ batch = true }, N)))
print(("metric channel_stream_unbatched_values %.0f values/s higher"):format(run(nil, N // 5)))
print("target channel_stream_values >=1")
