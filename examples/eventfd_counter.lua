-- An eventfd as a work counter between processes: the parent hands out
-- work tokens through a semaphore-mode eventfd (each take gets exactly one),
-- and the workers count finished jobs on a second eventfd in counter mode
-- (one take returns the sum of all the adds).
-- Run from the repository root: lua5.4 examples/eventfd_counter.lua
local ipc = require "lipc"

local JOBS, WORKERS = 20, 4
local tokens <close> = assert(ipc.eventfd(0, { semaphore = true }))
local finished <close> = assert(ipc.eventfd(0))
local stop <close> = assert(ipc.eventfd(0, { semaphore = true }))

local workers = {}
for w = 1, WORKERS do
  workers[w] = assert(ipc.spawn(function()
    local done = 0
    local poller <close> = ipc.poller()
    assert(poller:add(tokens, "r"))
    assert(poller:add(stop, "r"))
    while true do
      for obj in poller:wait(10) do
        -- a token another worker took first is just a timeout here
        if obj == tokens and tokens:take(0) then
          local x = 0
          for i = 1, 300000 do x = x + i % 7 end   -- the "job"
          done = done + 1
          assert(finished:add(1))
        elseif obj == stop and stop:take(0) then
          print(("worker %d (pid %d) did %d jobs"):format(w, ipc.getpid(), done))
          return 0
        end
      end
    end
  end))
end

assert(tokens:add(JOBS))                  -- JOBS tokens at once
local total = 0
while total < JOBS do
  total = total + assert(finished:take(10))   -- the sum since the last take
end
print(("parent: %d jobs finished"):format(total))
assert(total == JOBS)
assert(stop:add(WORKERS))                  -- one stop token per worker
for _, p in ipairs(workers) do
  local how, code = p:wait(10)
  assert(how == "exited" and code == 0)
  p:close()
end
assert(tokens:take(0) == nil, "tokens left over")
print("parent: every token taken exactly once")
