--- pool_map.lua - ipc.pool's map beside Python's multiprocessing.Pool.map
-- (bench/pool_map.py): 10,000 small items (a table each, a small
-- computation) on 2 worker processes, default batching (ceil(n / (4 *
-- workers)) items per message, as Python's chunksize); the pool made once;
-- items per second, the median over BENCH_ROUNDS maps (default 20) after 2
-- warm-up maps. No C baseline: compare with the Python column.
local ipc = require "lipc"
local clock = require "benchclock"

local N = 10000
local rounds = tonumber(os.getenv("BENCH_ROUNDS")) or 20

local items = {}
for i = 1, N do items[i] = { x = i, y = i % 7 } end

local pool <close> = assert(ipc.pool(2, function(item) return item.x * item.y + 1 end))
for _ = 1, 2 do assert(pool:map(items)) end
local rates = {}
for r = 1, rounds do
  local t0 = clock.now()
  local res, errs = pool:map(items)
  rates[r] = N / (clock.now() - t0)
  assert(not errs and res[N] == N * (N % 7) + 1)
end
table.sort(rates)
print(("metric pool_map_items %.0f items/s higher"):format(rates[rounds // 2 + 1]))
