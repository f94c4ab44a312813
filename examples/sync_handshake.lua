-- A robust process-shared mutex and a condition variable in shared memory:
-- parent and child take turns (ping-pong) on a shared "turn" word, then a
-- worker exits while holding the lock and the next locker is told
-- "owner died" instead of hanging forever.
-- Run from the repository root: lua5.4 examples/sync_handshake.lua
local ipc = require "lipc"

local MUTEX, COND, TURN, LOG = 0, 64, 128, 256
local region <close> = assert(ipc.shm.anonymous(4096))
local mu <close> = assert(ipc.mutex.new(region, MUTEX, { robust = true }))
local cv <close> = assert(ipc.cond.new(region, COND))

-- wait (mutex held) until the turn word says `who`
local function await(who)
  while region:load(TURN) ~= who do assert(cv:wait(mu, 10)) end
end

region:store(TURN, 1)
local child = assert(ipc.fork())
if child == 0 then
  for round = 1, 3 do
    assert(mu:lock(10))
    await(2)
    print(("child:  pong %d"):format(round))
    region:store(TURN, 1)
    assert(cv:signal())
    assert(mu:unlock())
  end
  ipc.exit(0)
end

for round = 1, 3 do
  assert(mu:lock(10))
  await(1)
  print(("parent: ping %d"):format(round))
  region:store(TURN, 2)
  assert(cv:signal())
  assert(mu:unlock())
end
assert(mu:lock(10))
await(1)
assert(mu:unlock())
local how, code = ipc.wait(child, 10)
assert(how == "exited" and code == 0, "child failed")

-- a worker takes the lock, writes half a record and dies
local worker = assert(ipc.fork())
if worker == 0 then
  assert(mu:lock(10))
  region:pack(LOG, "s2", "half-written rec")
  ipc.exit(3)          -- leaves without unlocking
end
assert(ipc.wait(worker, 10))
local ok, note = mu:lock(10)
assert(ok and note == "owner died", "a robust mutex reports the dead owner")
print(("parent: lock -> %s, %q; the record %q needs checking"):format(ok, note, region:unpack(LOG, "s2")))
assert(mu:unlock())
assert(mu:lock(10) and mu:unlock())
print("parent: the mutex is consistent again")
