--- task_wake.lua - how soon a task wakes when another process posts a
-- semaphore, unlocks a mutex or sends into a ring (the loop's futex waiter,
-- csrc/task.c), beside the same wait blocking the process and beside an
-- eventfd (a descriptor in the loop's epoll set).  A forked child stamps the
-- time into shared memory just before it posts, unlocks or sends; the
-- parent notes when its wait returned.  Median and p99 in microseconds.
-- Run through bench/run.sh (it sets LUA_PATH/LUA_CPATH and builds
-- benchclock), or alone with those set.  BENCH_WAKES (default 300) samples
-- per kind and mode.
local ipc = require "lipc"
local clock = require "benchclock"
local bench = require "benchutil"

local n = tonumber(os.getenv("BENCH_WAKES")) or 300
local ns = clock.ns

local function stats(list)
  table.sort(list)
  return list[#list // 2 + 1] / 1e3, list[math.ceil(#list * 0.99)] / 1e3
end

-- kinds: make(region) -> { child = fn(i) that stamps then releases,
-- prepare = fn() run by the child before the go (e.g. lock), wait = fn() run
-- by the parent, after = fn() run by the parent after the wait }
local kinds = {
  { "sem", function(r)
      local s = assert(ipc.sem.new(r, 64, 0))
      return { release = function() assert(s:post()) end, wait = function() assert(s:wait()) end,
               close = function() s:close() end }
    end },
  { "mutex", function(r)
      local mu = assert(ipc.mutex.new(r, 128))
      return { prepare = function() assert(mu:lock()) end, release = function() assert(mu:unlock()) end,
               wait = function() assert(mu:lock()) end, after = function() assert(mu:unlock()) end,
               close = function() mu:close() end }
    end },
  { "ring", function()
      local ring = assert(ipc.ring.create(4096))
      return { release = function() assert(ring:send("x")) end, wait = function() assert(ring:recv() == "x") end,
               close = function() ring:close() end }
    end },
  { "eventfd", function()
      local e = assert(ipc.eventfd(0))
      return { release = function() assert(e:add(1)) end, wait = function() assert(e:take() == 1) end,
               close = function() e:close() end }
    end },
}

--- Latencies (ns) of n wake-ups of kind, the parent waiting in a task
-- (in_task) or blocking.
local function wakes(make, in_task)
  local r <close> = assert(ipc.shm.anonymous(4096))
  local obj = make(r)
  local go <close> = assert(ipc.eventfd(0, { semaphore = true }))
  local armed <close> = assert(ipc.eventfd(0, { semaphore = true }))
  local pid = assert(ipc.fork())
  if pid == 0 then
    for _ = 1, n do
      go:take()
      if obj.prepare then obj.prepare() end
      armed:add(1)
      ipc.sleep(0.0005)   -- let the parent reach its wait
      r:store(0, ns())
      obj.release()
    end
    ipc.exit(0)
  end
  local lat = {}
  local function body()
    for i = 1, n do
      go:add(1)
      armed:take()
      obj.wait()
      lat[i] = ns() - r:load(0)
      if obj.after then obj.after() end
    end
  end
  bench.run(body, in_task)
  local how, code = ipc.wait(pid)
  assert(how == "exited" and code == 0, "child failed")
  obj.close()
  return lat
end

for _, k in ipairs(kinds) do
  local name, make = k[1], k[2]
  local task, block = {}, {}
  for _ = 1, 2 do   -- alternate, so that both see the same machine
    for _, v in ipairs(wakes(make, true)) do task[#task + 1] = v end
    for _, v in ipairs(wakes(make, false)) do block[#block + 1] = v end
  end
  local tm, tp = stats(task)
  local bm, bp = stats(block)
  print(("metric task_wake_%s_median %.3f us lower lipc"):format(name, tm))
  print(("metric task_wake_%s_p99 %.3f us lower lipc"):format(name, tp))
  print(("metric task_wake_%s_median %.3f us lower blocking"):format(name, bm))
  print(("metric task_wake_%s_p99 %.3f us lower blocking"):format(name, bp))
  io.stdout:flush()
end
