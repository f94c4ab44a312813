-- scripts/reference.lua - doc/reference.md from the editor types (types/).
--   lua5.4 scripts/reference.lua > doc/reference.md      (make reference)
-- One line per function, method and value: signature → returns, the entry's
-- first description line, and a link to its family page (its @see).
-- spec/types_spec.lua loads this file with the argument "module" to parse
-- the types the same way and to check that doc/reference.md is current.

local FILES = { "types/lipc.lua", "types/lipc/topology.lua", "types/lipc/testing.lua" }

-- Split "TYPE rest" where TYPE may hold spaces inside {}, () or <>.
local function split_type(s)
  local depth = 0
  for i = 1, #s do
    local c = s:sub(i, i)
    if c == "{" or c == "(" or c == "<" then depth = depth + 1
    elseif c == "}" or c == ")" or c == ">" then depth = depth - 1
    elseif c:match("%s") and depth == 0 then return s:sub(1, i - 1), (s:sub(i):gsub("^%s+", "")) end
  end
  return s, ""
end

-- The entries of one types file, in order: { name =, kind = "function" |
-- "method" | "value" | "table", owner =, params =, returns =, desc =, see =, file = }.
local function parse(path, into)
  into = into or {}
  local block, vars = {}, {}
  local lineno = 0
  for line in io.lines(path) do
    lineno = lineno + 1
    if line:match("^%-%-%-") then
      block[#block + 1] = line:sub(4)
    elseif line == "" or line:match("^%-%-") then
      if line == "" then block = {} end
    else
      local e = { params = {}, returns = {}, file = path, line = lineno }
      local desc = {}
      for _, b in ipairs(block) do
        local tag, rest = b:match("^@(%w+)%s*(.*)$")
        if tag == "class" then e.class = rest:match("^(%S+)")
        elseif tag == "param" then
          local name, more = rest:match("^(%S+)%s+(.*)$")
          local ty, d = split_type(more or "")
          local opt = name and name:sub(-1) == "?"
          if opt then name = name:sub(1, -2) end
          e.params[#e.params + 1] = { name = name, type = ty, opt = opt, desc = d }
        elseif tag == "return" then
          local ty, more = split_type(rest)
          local name, d = more:match("^(%S*)%s*(.*)$")
          e.returns[#e.returns + 1] = { type = ty, name = name ~= "" and name or nil, desc = d }
        elseif tag == "see" then e.see = rest
        elseif tag == "type" then e.type = rest
        elseif tag == nil and #desc == 0 and #e.params == 0 then desc[#desc + 1] = b
        end
      end
      e.desc = desc[1]
      local var = line:match("^local ([%w_]+) = {}")
      local fpath, fargs = line:match("^function ([%w_.]+)%((.-)%) end")
      local obj, meth, margs = line:match("^function ([%w_]+):([%w_]+)%((.-)%) end")
      local lhs = line:match("^([%w_.]+) = ")
      if var then
        vars[var] = e.class
      elseif fpath then
        e.kind, e.name, e.args = "function", fpath, fargs
        e.owner = fpath:match("^(.*)%.[^.]+$")
        into[#into + 1] = e
      elseif obj then
        local class = vars[obj] or error(("%s:%d: method of an unknown class '%s'"):format(path, lineno, obj))
        e.kind, e.name, e.args, e.owner = "method", class .. ":" .. meth, margs, class
        e.short = obj .. ":" .. meth
        into[#into + 1] = e
      elseif lhs and #block > 0 then
        e.kind = e.class and "table" or "value"
        e.name = lhs
        e.owner = lhs:match("^(.*)%.[^.]+$") or lhs
        into[#into + 1] = e
      end
      block = {}
    end
  end
  return into
end

local function parse_all(root)
  local all = {}
  for _, f in ipairs(FILES) do parse((root or ".") .. "/" .. f, all) end
  return all
end

local function code(s) return "`" .. s .. "`" end

-- "T or nil, err, errno" for the error triple (its second value named err,
-- or a success value that is "... or the error message"), else the types.
local function returns(e)
  local r = e.returns
  if #r == 0 then return nil end
  local n = #r
  if n >= 2 and r[n].name == "errno" then
    local last
    if r[n - 1].name == "err" then last = n - 2
    elseif (r[n - 1].desc or ""):match("or the error message") then last = n - 1 end
    if last then
      local main = {}
      for i = 1, last do
        local t = r[i].type:gsub("|nil", ""):gsub("^nil|", "")
        if i == n - 1 then t = t:gsub("|string", ""):gsub("^string|", "")   -- "or the error message"
        else t = t:gsub("%?$", "") end
        main[i] = t
      end
      return code(table.concat(main, ", ")) .. " or " .. code("nil, err, errno")
    end
  end
  local t = {}
  for i, x in ipairs(r) do t[i] = x.type end
  return code(table.concat(t, ", "))
end

local function signature(e)
  local ps = {}
  for i, p in ipairs(e.params) do ps[i] = p.name == "..." and "..." or (p.name .. (p.opt and "?" or "")) end
  local shown = e.kind == "method" and e.short or e.name
  return shown .. "(" .. table.concat(ps, ", ") .. ")"
end

local function link(e)
  if not e.see then return "" end
  local label = e.see:match("([^/#]+)%.md") or e.see
  return (" [%s](%s)"):format(label, e.see)
end

local function render(entries)
  local out = {}
  local function w(s) out[#out + 1] = s end
  w("# lipc reference")
  w("")
  w("Every function, method and value of `require \"lipc\"`, `require \"lipc.topology\"` and")
  w("`require \"lipc.testing\"`, one line each: signature → returns, what it does, its family page.")
  w("`x?` is an optional argument; \"or `nil, err, errno`\" is the error triple of a failed system")
  w("call (a timeout is `nil, \"timeout\", ipc.errno.ETIMEDOUT`). Generated from the editor types")
  w("(`types/lipc.lua`, `types/lipc/*.lua`) by `lua5.4 scripts/reference.lua > doc/reference.md`")
  w("(`make reference`); `spec/types_spec.lua` fails when it is out of date. Do not edit by hand.")
  local groups, order = {}, {}
  for _, e in ipairs(entries) do
    local g = e.kind == "method" and ("class " .. e.owner)
              or (e.kind == "table" and e.name or e.owner)
    if not groups[g] then
      groups[g] = {}
      order[#order + 1] = g
    end
    table.insert(groups[g], e)
  end
  for _, g in ipairs(order) do
    w("")
    local title
    if g:match("^class ") then title = "Class `" .. g:sub(7) .. "`"
    elseif g == "ipc" then title = "`ipc` — `local ipc = require \"lipc\"`"
    elseif g == "topology" then title = "`topology` — `local topology = require \"lipc.topology\"`"
    elseif g == "testing" then title = "`testing` — `local testing = require \"lipc.testing\"`"
    else title = "`" .. g .. "`" end
    w("## " .. title)
    w("")
    for _, e in ipairs(groups[g]) do
      local line
      if e.kind == "value" then
        line = ("- %s: %s — %s%s"):format(code(e.name), code(e.type or "?"), e.desc or "", link(e))
      elseif e.kind == "table" then
        line = ("- %s — %s"):format(code(e.name), e.desc or "")
      else
        local r = returns(e)
        line = ("- %s%s — %s%s"):format(code(signature(e)), r and (" → " .. r) or "", e.desc or "", link(e))
      end
      w(line)
    end
  end
  return table.concat(out, "\n") .. "\n"
end

local M = { parse = parse, parse_all = parse_all, render = render, FILES = FILES }

if ... == "module" then return M end
io.stdout:write(render(parse_all(".")))
