-- A node merges three inputs of different transports — a shared-memory
-- ring, a POSIX message queue and a Unix socket — as they arrive: one task
-- per input inside the node, so a quiet input never holds up the others.
-- The three sources send at different paces; the merge node checks that
-- every value came, in order per source, and prints how they interleaved.
-- Run from the repository root: lua5.4 examples/topology_merge.lua
local ipc = require "lipc"
local topo = require "lipc.topology"

local N = 40
local PACE = { ring = 0.002, mq = 0.003, sock = 0.001 }   -- seconds between sends

local g = topo.graph()
for src, pace in pairs(PACE) do
  g:node(src, function(out)
    for i = 1, N do
      assert(out:send({ src = src, seq = i }, 10))
      ipc.sleep(pace)                        -- a pace, not a synchronization
    end
  end)
end

g:node("merge", function(_, _, _, ctx)   -- one channel per link, then the context
  local seen, order = { ring = 0, mq = 0, sock = 0 }, {}
  -- one task per input.  Until ring waits in tasks are on the loop, a ring
  -- recv blocks the whole process: read it with a short timeout and let
  -- the other tasks run after each value (then simplify to ch:values(10))
  local function drain(ch, timeout)
    while true do
      local v, err, code = ch:recv(timeout)
      if v ~= nil then
        seen[v.src] = seen[v.src] + 1
        assert(v.seq == seen[v.src], "out of order")
        order[#order + 1] = v.src:sub(1, 1)
        coroutine.yield()                    -- the other inputs' turn
      elseif err == "closed" then
        return
      elseif code ~= ipc.errno.ETIMEDOUT then
        error(err)
      end
    end
  end
  local tasks = {}
  for src, ch in pairs(ctx.inputs) do
    tasks[#tasks + 1] = ipc.go(drain, ch, src == "ring" and 0.005 or 10)
  end
  assert(ipc.loop(30))
  for _, t in ipairs(tasks) do assert(t:join()) end
  for src, n in pairs(seen) do assert(n == N, src .. " lost values") end
  print(("merged %d values: %s"):format(#order, table.concat(order)))
  return 0
end)

g:link("ring", "merge", { via = "ring" })
g:link("mq", "merge", { via = "mq" })
g:link("sock", "merge", { via = "unix" })

local results, ok = g:run(60)
for name, r in pairs(results) do
  if r.status ~= "exited" or r.code ~= 0 then print(name .. ": " .. r.status .. " " .. r.code) end
end
os.exit(ok and 0 or 1)
