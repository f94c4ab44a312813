-- One graph, any transport: a producer sends tables through a relay to a
-- consumer (producer -> relay -> consumer); the links use the transport
-- named on the command line, or each transport in turn, and the time each
-- run took is printed.
-- Run from the repository root: lua5.4 examples/topology_transports.lua [via|all]
local ipc = require "lipc"
local topo = require "lipc.topology"

local ALL = { "pipe", "fifo", "socketpair", "unix", "tcp", "mq", "msg", "ring" }
local N = 5000
local choice = arg[1] or "all"
local vias = choice == "all" and ALL or { choice }

local function run(via)
  local g = topo.graph()
  g:node("producer", function(out)
    for i = 1, N do assert(out:send({ seq = i, payload = { x = i * 0.5, tag = "item" } }, 10)) end
  end)
  g:node("relay", function(inp, out)
    for v in inp:values(10) do
      v.relayed = true
      assert(out:send(v, 10))
    end
  end)
  g:node("consumer", function(inp)
    local n = 0
    for v in inp:values(10) do
      n = n + 1
      assert(v.seq == n and v.relayed and v.payload.x == n * 0.5)
    end
    return n == N and 0 or 1
  end)
  g:link("producer", "relay", { via = via })
  g:link("relay", "consumer", { via = via })
  local t0 = ipc.channel._now()
  local results, ok = g:run(60)
  local took = ipc.channel._now() - t0
  for name, r in pairs(results) do
    if r.status ~= "exited" or r.code ~= 0 then print(via .. ": " .. name .. " " .. r.status .. " " .. r.code) end
  end
  return ok, took
end

print(("%d tables through producer -> relay -> consumer"):format(N))
local failed = false
for _, via in ipairs(vias) do
  local ok, took = run(via)
  print(("  %-10s %7.1f ms  %6.1f us/value  %s"):format(via, took * 1e3, took * 1e6 / N, ok and "ok" or "FAILED"))
  failed = failed or not ok
end
os.exit(failed and 1 or 0)
