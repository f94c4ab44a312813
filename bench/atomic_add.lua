--- atomic_add.lua - the lipc side of bench/atomic_add.c: rate of r:add
-- (a 64-bit seq_cst atomic add) on a shared anonymous region, one process.
-- Run through bench/run.sh.  BENCH_OPS (default 20000000).
local ipc = require "lipc"
local clock = require "benchclock"

local ops = tonumber(os.getenv("BENCH_OPS")) or 20000000
local r <close> = assert(ipc.shm.anonymous(4096))
local add = r.add

local t0 = clock.now()
for _ = 1, ops do add(r, 0, 1) end
local t1 = clock.now()
assert(r:load(0) == ops)
print(("metric atomic_add_rate %.2f Mops/s higher"):format(ops / (t1 - t0) / 1e6))
