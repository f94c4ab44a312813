-- The editor types (types/lipc.lua, types/lipc/*.lua) against what lipc
-- really exports, both ways, and doc/reference.md against the types.  When
-- this fails after you added a function: add an entry for each name it
-- lists to the types file (see its header), then `make reference`.
local ipc = require "lipc"
local topology = require "lipc.topology"
local testing = require "lipc.testing"

local reference = assert(loadfile("scripts/reference.lua"))("module")

-- Every name lipc exports: "ipc.f", "ipc.mq.open", "ipc.mq.PRIO_MAX",
-- "lipc.<class>:<method>", "topology.f", "lipc.topology.graph:<method>",
-- "testing.f".  Names starting with "_" below the top level are private;
-- ipc.signal's SIG* constants are one documented family.
local function exported()
  local names = {}
  local function add(n) names[n] = true end
  local function methods(class, t)
    for m, f in pairs(t) do
      if type(f) == "function" and not m:match("^__") then add(class .. ":" .. m) end
    end
  end
  for k, v in pairs(ipc) do
    add("ipc." .. k)
    if type(v) == "table" and k ~= "errno" and k ~= "_methods" then
      for k2 in pairs(v) do
        if type(k2) == "string" and k2:sub(1, 1) ~= "_" and not (k == "signal" and k2:match("^SIG")) then
          add("ipc." .. k .. "." .. k2)
        end
      end
    end
  end
  for kind, t in pairs(ipc._methods) do methods("lipc." .. kind, t) end
  local t = ipc.go(function() end)
  methods("lipc.task", getmetatable(t).__index)
  assert(ipc.loop(10))
  methods("lipc.channel", ipc.channel.Channel)
  for k in pairs(topology) do add("topology." .. k) end
  methods("lipc.topology.graph", getmetatable(topology.graph()).__index)
  methods("lipc.topology.pipeline", getmetatable(topology.pipeline { { "true" } }).__index)
  for k in pairs(testing) do add("testing." .. k) end
  return names
end

local function sorted(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  table.sort(list)
  return list
end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

describe("editor types (types/lipc.lua)", function()
  local entries = reference.parse_all(".")

  it("name every function, method and value lipc exports, and nothing else", function()
    local documented, dup = {}, {}
    for _, e in ipairs(entries) do
      if documented[e.name] then dup[#dup + 1] = e.name end
      documented[e.name] = true
    end
    local have = exported()
    local missing, extra = {}, {}
    for n in pairs(have) do if not documented[n] then missing[n] = true end end
    for n in pairs(documented) do if not have[n] then extra[n] = true end end
    local msg = {}
    if next(missing) then
      msg[#msg + 1] = "missing from types/lipc.lua (or types/lipc/*.lua): add an entry for each, "
                      .. "then `make reference`:\n  " .. table.concat(sorted(missing), "\n  ")
    end
    if next(extra) then
      msg[#msg + 1] = "in the types but not exported by lipc (renamed or removed?):\n  "
                      .. table.concat(sorted(extra), "\n  ")
    end
    if #dup > 0 then msg[#msg + 1] = "documented twice: " .. table.concat(dup, ", ") end
    assert(#msg == 0, table.concat(msg, "\n"))
  end)

  it("give every function a description, a family page and its parameters", function()
    local bad = {}
    for _, e in ipairs(entries) do
      local where = ("%s:%d %s"):format(e.file, e.line, e.name)
      if e.kind == "function" or e.kind == "method" then
        if not e.desc or e.desc == "" then bad[#bad + 1] = where .. ": no description line" end
        if not e.see then
          bad[#bad + 1] = where .. ": no @see page"
        elseif not exists("doc/" .. e.see:gsub("#.*$", "")) then
          bad[#bad + 1] = where .. ": @see " .. e.see .. " does not exist in doc/"
        end
        local args = {}
        for a in e.args:gmatch("[^,%s]+") do args[#args + 1] = a end
        local params = {}
        for i, p in ipairs(e.params) do params[i] = p.name end
        if table.concat(args, ",") ~= table.concat(params, ",") then
          bad[#bad + 1] = ("%s: @param %s but function(%s)"):format(where, table.concat(params, ","), e.args)
        end
      elseif e.kind == "value" and not e.type then
        bad[#bad + 1] = where .. ": a value without @type"
      end
    end
    assert(#bad == 0, table.concat(bad, "\n"))
  end)

  it("describe errors as the triple: T|nil, string? err, integer? errno", function()
    -- a function whose last return is errno returns nil first on failure
    local bad = {}
    for _, e in ipairs(entries) do
      local r = e.returns
      if #r >= 3 and r[#r].name == "errno" then
        local t = r[1].type
        if not (t == "any" or t:match("|nil$") or t:match("%?$") or t:match("^nil|")) then
          bad[#bad + 1] = e.name .. ": first return " .. r[1].type .. " cannot be nil"
        end
        if r[#r].type ~= "integer?" then bad[#bad + 1] = e.name .. ": errno is " .. r[#r].type end
      end
    end
    assert(#bad == 0, table.concat(bad, "\n"))
  end)

  it("make doc/reference.md (regenerate with `make reference`)", function()
    local f = assert(io.open("doc/reference.md"))
    local current = f:read("a")
    f:close()
    local fresh = reference.render(entries)
    if current ~= fresh then
      local a, b = {}, {}
      for l in current:gmatch("[^\n]*") do a[#a + 1] = l end
      for l in fresh:gmatch("[^\n]*") do b[#b + 1] = l end
      local first
      for i = 1, math.max(#a, #b) do
        if a[i] ~= b[i] then first = i break end
      end
      error(("doc/reference.md is out of date: run `make reference` "
             .. "(first difference at line %d:\n  have: %s\n  want: %s)")
            :format(first, tostring(a[first]), tostring(b[first])), 0)
    end
  end)
end)
