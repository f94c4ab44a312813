-- A shared counter incremented by 4 processes: a plain read-modify-write
-- (load, add 1, store) loses updates when two processes interleave; the
-- same loop guarded by a process-shared semaphore is exact.  r:add, one
-- atomic instruction, is exact too without any lock.
-- Run from the repository root: lua5.4 examples/sem_counter_race.lua
local ipc = require "lipc"

local WORKERS, ROUNDS = 4, 20000
local COUNTER, ATOMIC, LOCK = 0, 8, 64

-- an anonymous shared mapping is inherited by the forked workers
local shared <close> = assert(ipc.shm.anonymous(4096))
local lock <close> = assert(ipc.sem.new(shared, LOCK, 1))  -- a binary semaphore

-- run the workers, each doing ROUNDS increments with fn; return the total
local function run(fn)
  shared:store(COUNTER, 0)
  shared:store(ATOMIC, 0)
  local pids = {}
  for w = 1, WORKERS do
    pids[w] = assert(ipc.fork())
    if pids[w] == 0 then
      for _ = 1, ROUNDS do fn() end
      ipc.exit(0)
    end
  end
  for w = 1, WORKERS do
    local how, code = ipc.wait(pids[w], 60)
    assert(how == "exited" and code == 0, "worker failed")
  end
end

local expected = WORKERS * ROUNDS

run(function() shared:store(COUNTER, shared:load(COUNTER) + 1) end)
local racy = shared:load(COUNTER)
print(("without the semaphore: %d of %d (%d updates lost)"):format(racy, expected, expected - racy))

run(function()
  assert(lock:wait())
  shared:store(COUNTER, shared:load(COUNTER) + 1)
  assert(lock:post())
end)
local guarded = shared:load(COUNTER)
print(("with the semaphore:    %d of %d"):format(guarded, expected))
assert(guarded == expected, "the semaphore must make the count exact")

run(function() shared:add(ATOMIC, 1) end)
print(("with r:add (atomic):   %d of %d"):format(shared:load(ATOMIC), expected))
assert(shared:load(ATOMIC) == expected)
