--- codec.lua - ipc.encode + ipc.decode against lua-cjson's encode + decode on
-- the same representative nested table (records with strings, integers,
-- floats, booleans, small arrays and a nested map), and encode and decode
-- apart on the small message bench/channel_rtt.lua sends (codec_small_*).
-- Run: LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;" lua5.4 bench/codec.lua
-- BENCH_ITERS (default 2000) round trips per pass; the best of 5 alternating passes counts.
-- Small message: the best of 20 batches of 20000 calls each.
local ipc = require "lipc"
local ok, cjson = pcall(require, "cjson")

local iters = tonumber(os.getenv("BENCH_ITERS")) or 2000

--- The sample: 50 user records, like a typical RPC/state payload.
local function sample()
  local users = {}
  for i = 1, 50 do
    users[i] = {
      id = i * 7919,
      name = "user" .. i,
      email = ("user%d@example.org"):format(i),
      score = i * 1.25,
      active = i % 3 ~= 0,
      tags = { "alpha", "beta", "gamma" },
      pos = { x = i / 3, y = -i / 7 },
      history = { i, i + 1, i + 2, i + 3, i + 4 },
    }
  end
  return { version = 3, generated = "2026-11-27T12:00:00Z", users = users, total = 50 }
end

--- Microseconds per encode+decode round trip of value through enc/dec (one pass).
local function measure(enc, dec, value)
  local t0 = os.clock()
  for _ = 1, iters do
    local s = enc(value)
    local v = dec(s)
    assert(v ~= nil)
  end
  return (os.clock() - t0) / iters * 1e6
end

local value = sample()
local back = ipc.decode(ipc.encode(value))
assert(back.users[50].pos.y == value.users[50].pos.y and back.users[3].active == false)
-- alternate the two codecs, 5 passes each, and keep the best pass of each
local lipc_us, cjson_us = math.huge, math.huge
for _ = 1, 5 do
  lipc_us = math.min(lipc_us, measure(ipc.encode, ipc.decode, value))
  if ok then cjson_us = math.min(cjson_us, measure(cjson.encode, cjson.decode, value)) end
end
print(("metric codec_lipc_us %.2f us lower"):format(lipc_us))
print(("metric codec_lipc_bytes %d bytes lower"):format(#ipc.encode(value)))

--- The small message of bench/channel_rtt.lua.
local SMALL = { id = 123, name = "widget", tags = { "a", "b", "c" }, price = 9.99,
                dims = { w = 1.5, h = 2, d = 0.25 }, ok = true, items = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 } }

--- Best microseconds per call of f(arg) over batches of calls (the least disturbed batch).
local function best_us(f, arg)
  local batch, best = 20000, math.huge
  for _ = 1, 20 do
    local t0 = ipc.clock()
    for _ = 1, batch do f(arg) end
    best = math.min(best, (ipc.clock() - t0) / batch * 1e6)
  end
  return best
end

local small = ipc.encode(SMALL)
print(("metric codec_small_encode_lipc_us %.3f us lower"):format(best_us(ipc.encode, SMALL)))
print(("metric codec_small_decode_lipc_us %.3f us lower"):format(best_us(ipc.decode, small)))
print(("metric codec_small_lipc_bytes %d bytes lower"):format(#small))
if ok then
  local js = cjson.encode(SMALL)
  print(("metric codec_small_encode_cjson_us %.3f us lower"):format(best_us(cjson.encode, SMALL)))
  print(("metric codec_small_decode_cjson_us %.3f us lower"):format(best_us(cjson.decode, js)))
end
if ok then
  print(("metric codec_cjson_us %.2f us lower"):format(cjson_us))
  print(("metric codec_cjson_bytes %d bytes lower"):format(#cjson.encode(value)))
  print(("metric codec_ratio_lipc_cjson %.3f ratio lower"):format(lipc_us / cjson_us))
else
  print("# lua-cjson not installed: no comparison")
end
