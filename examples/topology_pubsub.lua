-- Publish/subscribe across processes: one publisher sends every news item
-- to three subscribers, each over a different transport (POSIX message
-- queue, shared-memory ring, Unix socket); each subscriber keeps only its
-- topics and reports what it got. Nothing is left behind afterwards.
-- Run from the repository root: lua5.4 examples/topology_pubsub.lua
local topo = require "lipc.topology"

local news = {
  { topic = "sports", text = "home team wins", score = { 3, 1 } },
  { topic = "weather", text = "rain tomorrow", mm = 12.5 },
  { topic = "sports", text = "away team wins", score = { 0, 2 } },
  { topic = "markets", text = "index up", change = 0.8 },
  { topic = "weather", text = "sunny weekend", mm = 0 },
  { topic = "markets", text = "index down", change = -1.1 },
}
local subscribers = {
  { name = "sports-fan", via = "mq", topics = { sports = true } },
  { name = "farmer", via = "ring", topics = { weather = true, markets = true } },
  { name = "archive", via = "unix", topics = { sports = true, weather = true, markets = true } },
}

local g = topo.graph()
g:node("publisher", function(...)
  local ctx = select(select("#", ...), ...)
  for _, item in ipairs(news) do
    for _, s in ipairs(subscribers) do assert(ctx.outputs[s.name]:send(item, 10)) end
  end
  print("publisher: sent " .. #news .. " items to " .. #subscribers .. " subscribers")
end)
for _, s in ipairs(subscribers) do
  g:node(s.name, function(inp)
    local got, expected = {}, 0
    for _, item in ipairs(news) do if s.topics[item.topic] then expected = expected + 1 end end
    while true do
      local item, err = inp:recv(10)
      if err == "closed" then break end
      assert(item, err)
      if s.topics[item.topic] then got[#got + 1] = item.text end
    end
    print(("%-10s (via %-4s) got %d: %s"):format(s.name, s.via, #got, table.concat(got, "; ")))
    return #got == expected and 0 or 1
  end)
  g:link("publisher", s.name, { via = s.via })
end

print(g:dot())
local results, ok = g:run(30)
for name, r in pairs(results) do
  if r.status ~= "exited" or r.code ~= 0 then print(name .. " failed: " .. r.status .. " " .. r.code) end
end
assert(ok, "a node failed")
