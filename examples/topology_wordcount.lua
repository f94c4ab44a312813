-- Map-reduce word count across processes: a reader node splits a text file
-- into chunks of lines and deals them to three mapper processes over pipes;
-- each mapper counts the words of its chunks and sends its partial counts
-- (a table) to the reducer over a shared-memory ring; the reducer merges
-- them and prints the most frequent words. The total is checked against a
-- count done in this process.
-- Run from the repository root: lua5.4 examples/topology_wordcount.lua [file]
local topo = require "lipc.topology"

local path = arg[1] or "/usr/share/common-licenses/GPL-3"
local f = io.open(path)
local text
if f then text = f:read("a"); f:close()
else  -- no such file here: make a text of our own
  local words = { "lua", "pipe", "queue", "socket", "ring", "process", "kernel", "message" }
  local lines = {}
  for i = 1, 5000 do lines[i] = words[i % 8 + 1] .. " " .. words[(i * 7) % 8 + 1] .. " " .. words[(i * 3) % 5 + 1] end
  text, path = table.concat(lines, "\n") .. "\n", "(generated text)"
end
local expected = 0
for _ in text:gmatch("%a+") do expected = expected + 1 end

local MAPPERS, CHUNK = 3, 200
local g = topo.graph()
g:node("reader", function(...)
  local outs = { ... }
  local chunk, n, i = {}, 0, 0
  local function deal()
    i = i + 1
    assert(outs[(i - 1) % MAPPERS + 1]:send(table.concat(chunk, "\n"), 10))
    chunk, n = {}, 0
  end
  for line in text:gmatch("[^\n]*") do
    n = n + 1; chunk[n] = line
    if n == CHUNK then deal() end
  end
  if n > 0 then deal() end
end)
for m = 1, MAPPERS do
  g:node("map" .. m, function(inp, out)
    local counts = {}
    for lines in inp:values(30) do
      for w in lines:gmatch("%a+") do w = w:lower(); counts[w] = (counts[w] or 0) + 1 end
    end
    assert(out:send(counts, 10))
  end)
  g:link("reader", "map" .. m, { via = "pipe" })
end
g:node("reduce", function(...)
  local total, merged, list = 0, {}, {}
  for _, inp in ipairs { ... } do
    if type(inp) == "table" and inp.recv then
      for w, c in pairs(assert(inp:recv(30))) do merged[w] = (merged[w] or 0) + c; total = total + c end
    end
  end
  for w, c in pairs(merged) do list[#list + 1] = { w, c } end
  table.sort(list, function(a, b) return a[2] > b[2] or (a[2] == b[2] and a[1] < b[1]) end)
  print(("%s: %d words, %d different; top ten:"):format(path, total, #list))
  for k = 1, math.min(10, #list) do print(("  %-10s %5d"):format(list[k][1], list[k][2])) end
  return total == expected and 0 or 1
end)
for m = 1, MAPPERS do g:link("map" .. m, "reduce", { via = "ring", size = 1 << 20 }) end

local results, ok = g:run(60)
for name, r in pairs(results) do assert(r.status == "exited" and r.code == 0, name .. " failed") end
assert(ok)
print(("checked: %d words in this process too"):format(expected))
