--- shm_bandwidth.lua - the lipc side of bench/shm_bandwidth.c: r:write of a
-- 64 KiB string into a shared anonymous region and r:read of 64 KiB back (a
-- new Lua string each time), in MB/s.  Run through bench/run.sh.
-- BENCH_ROUNDS (default 40000) blocks each way.
local ipc = require "lipc"
local clock = require "benchclock"

local BLOCK, SLOTS = 65536, 16
local rounds = tonumber(os.getenv("BENCH_ROUNDS")) or 40000

local r <close> = assert(ipc.shm.anonymous(BLOCK * SLOTS))
r:fill(0)
local src = ("x"):rep(BLOCK)
local write, read = r.write, r.read

local t0 = clock.now()
for i = 0, rounds - 1 do write(r, (i % SLOTS) * BLOCK, src) end
local t1 = clock.now()
local n = 0
for i = 0, rounds - 1 do n = n + #read(r, (i % SLOTS) * BLOCK, BLOCK) end
local t2 = clock.now()
assert(n == rounds * BLOCK)

local mb = rounds * BLOCK / 1e6
print(("metric shm_write_64k %.0f MB/s higher"):format(mb / (t1 - t0)))
print(("metric shm_read_64k %.0f MB/s higher"):format(mb / (t2 - t1)))
