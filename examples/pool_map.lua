-- A pool of worker processes mapping a function over a list: results come
-- back in order; an item that raises gets its message in `errors`, the rest
-- are unaffected.
-- Run from the repository root: lua5.4 examples/pool_map.lua
local ipc = require "lipc"

-- each worker runs this for the items it is given (a table in, a table out)
local pool <close> = assert(ipc.pool(4, function(job)
  if job.n < 0 then error("negative input " .. job.n, 0) end
  local f = 1
  for i = 2, job.n do f = f * i end
  return { n = job.n, factorial = f, worker = ipc.getpid() }
end))

local jobs = {}
for i = 1, 20 do jobs[i] = { n = i } end
jobs[13] = { n = -13 }                        -- this one raises in its worker

local results, errors = pool:map(jobs, 30)
assert(results, errors)
local workers = {}
for i = 1, #jobs do
  local r = results[i]
  if r then
    workers[r.worker] = true
    print(("%2d! = %d"):format(r.n, r.factorial))
  else
    print(("%2d: error: %s"):format(i, errors[i]))
  end
end
assert(errors and errors[13] == "negative input -13", "item 13 should have failed")
assert(results[20].factorial == 2432902008176640000, "20! is wrong")
local n = 0
for _ in pairs(workers) do n = n + 1 end
print(("%d items, %d workers took part"):format(#jobs, n))
assert(not workers[ipc.getpid()], "the work must run in the workers")
