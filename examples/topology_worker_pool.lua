-- A worker pool as a process graph: a boss node fans out ranges of numbers
-- to four worker processes over socketpair links, each worker counts the
-- primes in the ranges it gets and sends the counts back on the same link
-- (fan-in); the boss adds them up and checks the known answer.
-- Run from the repository root: lua5.4 examples/topology_worker_pool.lua
local topo = require "lipc.topology"

local LIMIT, CHUNK, WORKERS = 1000000, 25000, 4
local EXPECTED = 78498                    -- primes below one million

local function count_primes(lo, hi)
  local n = 0
  for x = math.max(lo, 2), hi do
    local prime = true
    for d = 2, math.floor(math.sqrt(x)) do
      if x % d == 0 then prime = false; break end
    end
    if prime then n = n + 1 end
  end
  return n
end

local g = topo.graph()
g:node("boss", function(...)
  local ctx = select(select("#", ...), ...)
  local workers = {}
  for name, ch in pairs(ctx.outputs) do workers[#workers + 1] = { name = name, ch = ch } end
  table.sort(workers, function(a, b) return a.name < b.name end)
  local jobs = 0
  for lo = 1, LIMIT, CHUNK do           -- fan out round robin
    local w = workers[jobs % #workers + 1]
    assert(w.ch:send({ lo = lo, hi = math.min(lo + CHUNK - 1, LIMIT) }, 10))
    jobs = jobs + 1
  end
  for _, w in ipairs(workers) do assert(w.ch:finish()) end
  local total, done = 0, 0
  for _, w in ipairs(workers) do        -- fan in
    for r in w.ch:values(30) do
      total, done = total + r.count, done + 1
      w.jobs = (w.jobs or 0) + 1
    end
    print(("  %s did %d ranges"):format(w.name, w.jobs))
  end
  print(("%d ranges, %d primes below %d"):format(done, total, LIMIT))
  return (done == jobs and total == EXPECTED) and 0 or 1
end)
for i = 1, WORKERS do
  local name = "worker" .. i
  g:node(name, function(boss)
    for job in boss:values(30) do
      assert(boss:send({ lo = job.lo, count = count_primes(job.lo, job.hi) }, 10))
    end
  end)
  g:link("boss", name, { via = "socketpair" })
end

local results, ok = g:run(60)
for _, name in ipairs { "boss", "worker1", "worker2", "worker3", "worker4" } do
  local r = results[name]
  print(("%-8s %s %d after %.2f s"):format(name, r.status, r.code, r.seconds))
end
assert(ok, "a node failed")
