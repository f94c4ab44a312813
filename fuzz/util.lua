--- Shared parts of the fuzzers (fuzz/api.lua, fuzz/decode.lua) and the
-- kill-stress (fuzz/stress.lua): rendering values, the sandbox a child runs
-- in, snapshots of what could leak, and running a child under a watchdog.
local ipc = require "lipc"
local testing = require "lipc.testing"

local U = {}

--- true when children can get their own IPC, mount and network namespaces.
function U.can_isolate()
  if os.getenv("FUZZ_NS") == "0" then return false end
  if U._iso == nil then
    local p = io.popen("id -u")
    local uid = p and p:read("l")
    if p then p:close() end
    U._iso = uid == "0" and
      os.execute("unshare --ipc --mount --net --pid --fork --mount-proc --propagation private true 2>/dev/null") == true
  end
  return U._iso
end

-- The mounts a sandboxed child gets: its own /dev/shm, /dev/mqueue and a
-- private tmpfs over its scratch directory, which is its TMPDIR (so sweep
-- and socket paths stay inside; /tmp itself stays visible, since the
-- checkout may live there), loopback up.  The shell stays pid 1 of the new
-- pid namespace (a signal to pid 1 would be ignored); when it exits every
-- process of the namespace goes too.
local NSINIT = [[
mount -t tmpfs -o size=64m,mode=1777 tmpfs /dev/shm || exit 97
mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue || exit 97
mount -t tmpfs -o size=64m,mode=1777 tmpfs "$FUZZ_SCRATCH" || exit 97
ip link set lo up 2>/dev/null
cd "$FUZZ_SCRATCH" && export TMPDIR="$FUZZ_SCRATCH" || exit 97
"$@"]]

local PLAIN = [[
cd "$FUZZ_SCRATCH" && export TMPDIR="$FUZZ_SCRATCH" || exit 97
exec "$@"]]

--- The argv (for ipc.exec) that runs argv in a new session, sandboxed: its
-- own namespaces when possible, else in the scratch directory scratch.
function U.sandbox_argv(argv, scratch)
  local cmd = { "setsid", "env", "FUZZ_SCRATCH=" .. scratch }
  if U.can_isolate() then
    for _, a in ipairs { "unshare", "--ipc", "--mount", "--net", "--pid", "--fork", "--mount-proc",
                         "--propagation", "private",
                         "sh", "-c", NSINIT, "fz" } do cmd[#cmd + 1] = a end
  else
    for _, a in ipairs { "sh", "-c", PLAIN, "fz" } do cmd[#cmd + 1] = a end
  end
  for _, a in ipairs(argv) do cmd[#cmd + 1] = a end
  return cmd
end

--- Run argv sandboxed (see sandbox_argv) with its output collected.
-- on_data(text) sees output as it comes.  A child silent for hang seconds
-- (or running past limit seconds) is killed with its whole session.
-- Returns { how = "exited"|"signaled"|"hang"|"limit", code =, out = all output }.
function U.run_child(argv, opts)
  local mk = io.popen("mktemp -d " .. (os.getenv("TMPDIR") or "/tmp") .. "/lipcfz.XXXXXX")
  local scratch = mk:read("l")
  mk:close()
  local r, w = assert(ipc.pipe())
  local t = U.sandbox_argv(argv, scratch)
  t.stdout, t.stderr, t.stdin, t.env = w, w, "null", opts.env
  local p, err = ipc.exec(t)
  w:close()
  if not p then
    r:close()
    error("cannot start the fuzz child: " .. tostring(err))
  end
  local pid = p.pid
  local chunks, last, start = {}, ipc.clock(), ipc.clock()
  local how, code, killed
  while true do
    local data = r:read(65536, 0.05)
    if data then
      chunks[#chunks + 1] = data
      last = ipc.clock()
      if opts.on_data then opts.on_data(data) end
    end
    local h, c = p:status()
    if h then how, code = h, c break end
    local tnow = ipc.clock()
    if not killed and tnow - last > opts.hang then killed = "hang"
    elseif not killed and opts.limit and tnow - start > opts.limit then killed = "limit" end
    if killed then
      pcall(ipc.signal.kill, -pid, "KILL")
      pcall(p.kill, p, "KILL")
      how, code = p:wait(30)
      break
    end
  end
  -- the session's leftovers go first, then what is left in the pipe
  pcall(ipc.signal.kill, -pid, "KILL")
  local quiet = ipc.clock()
  while ipc.clock() - quiet < 0.5 do
    local data, e = r:read(65536, 0.05)
    if data then
      chunks[#chunks + 1] = data
      quiet = ipc.clock()
    elseif e == nil then
      break   -- end of stream
    end
  end
  r:close()
  p:close()
  os.execute("rm -rf '" .. scratch .. "'")
  -- (a shell reports its child's death by signal n as exit status 128 + n)
  if how == "exited" and code and code > 128 and code < 160 then how, code = "signaled", code - 128 end
  return { how = killed or how, code = code, out = table.concat(chunks) }
end

-- ---- rendering values as Lua source ----------------------------------------

local labels = setmetatable({}, { __mode = "k" })

--- Give v (a table, function, userdata or thread) a name for show().
function U.label(v, name) labels[v] = name return v end

--- v as a short Lua expression (for the printed call sequences).
function U.show(v, depth)
  local t = type(v)
  if labels[v] then return labels[v] end
  if t == "number" then
    if math.type(v) == "integer" then
      if v == math.mininteger then return "math.mininteger" end
      if v == math.maxinteger then return "math.maxinteger" end
      return tostring(v)
    end
    if v ~= v then return "(0/0)" end
    if v == math.huge then return "math.huge" end
    if v == -math.huge then return "-math.huge" end
    if v == 0 and 1 / v < 0 then return "-0.0" end
    local s = ("%.17g"):format(v)
    if not s:find("[%.eEn]") then s = s .. ".0" end
    return s
  elseif t == "string" then
    if #v > 48 then
      local c = v:sub(1, 1)
      if v == c:rep(#v) then return ("string.rep(%q, %d)"):format(c, #v) end
      return ("(%q..<%d bytes>)"):format(v:sub(1, 24), #v)
    end
    return (("%q"):format(v):gsub("\\\n", "\\n"))
  elseif t == "table" then
    depth = (depth or 0) + 1
    if depth > 3 then return "{...}" end
    local parts, n = {}, 0
    for i, x in ipairs(v) do
      n = n + 1
      if n > 8 then parts[#parts + 1] = "..." break end
      parts[i] = U.show(x, depth)
    end
    local keys = {}
    for k in pairs(v) do
      if not (math.type(k) == "integer" and k >= 1 and k <= #parts) then keys[#keys + 1] = k end
    end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for i, k in ipairs(keys) do
      if i > 8 then parts[#parts + 1] = "..." break end
      local ks = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or ("[" .. U.show(k, depth) .. "]")
      parts[#parts + 1] = ks .. "=" .. U.show(v[k], depth)
    end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  return tostring(v)
end

-- ---- snapshots of what could leak ------------------------------------------

--- Everything a process could leave behind, as a set of strings: its
-- descriptors ("fd 7"), the entries of /dev/shm and of every mqueue mount
-- ("/dev/shm/x"), of the scratch dir, and System V ids ("sysv msg key=..
-- id=..") -- lipc.testing's snapshot, flattened for diffing and naming.
-- filter(name) (optional) keeps only names that could be ours, and leaves
-- out the System V ids (they carry no owner's name).
function U.snapshot(scratch, filter)
  local snap = testing.snapshot(scratch and { dirs = { scratch = scratch } } or nil)
  local s = {}
  for fd in pairs(snap.fds) do s["fd " .. fd] = true end
  local names = {}
  for n in pairs(snap.shm) do names["/dev/shm/" .. n] = true end
  for n, dir in pairs(snap.mqueue) do names[dir .. "/" .. n] = true end
  for n in pairs(snap.scratch or {}) do names[scratch .. "/" .. n] = true end
  for n in pairs(names) do
    if not filter or filter(n) then s[n] = true end
  end
  if not filter then
    for item in pairs(snap.sysv) do s["sysv " .. item] = true end
  end
  return s
end

--- The entries of snapshot b missing from snapshot a, sorted.
function U.diff(a, b)
  local out = {}
  for k in pairs(b) do if not a[k] then out[#out + 1] = k end end
  table.sort(out)
  return out
end

--- The target of this process's descriptor fd.
function U.fd_target(fd)
  local p = io.popen("readlink /proc/" .. ipc.getpid() .. "/fd/" .. fd .. " 2>/dev/null")
  local t = p and p:read("l") or "?"
  if p then p:close() end
  return t
end

-- ---- random Lua values for the codec ---------------------------------------

local SPECIAL_INTS = { 0, 1, -1, 127, 128, -128, 255, 256, 65535, 65536, 2 ^ 31 // 1, -(2 ^ 31 // 1),
                       2 ^ 32 // 1, 2 ^ 53 // 1, math.maxinteger, math.mininteger, math.maxinteger - 1,
                       math.mininteger + 1 }
local SPECIAL_FLOATS = { 0.0, -0.0, 0.5, -1.5, 1e308, -1e308, 5e-324, math.huge, -math.huge, 0 / 0,
                         2.0 ^ 53, 2.0 ^ 63, -2.0 ^ 63, 1 / 3 }

--- A random string: short, with NUL bytes, binary, or long.
function U.rand_string()
  local r = math.random(10)
  if r <= 3 then
    local t = {}
    for i = 1, math.random(0, 12) do t[i] = string.char(math.random(0, 255)) end
    return table.concat(t)
  elseif r <= 5 then return ({ "", "\0", "a\0b", "\0\0\0", "nil", "\255\254", "x" })[math.random(7)]
  elseif r <= 8 then return ("k" .. math.random(100))
  elseif r == 9 then return string.rep(string.char(math.random(0, 255)), math.random(100, 5000))
  end
  return string.rep("z", math.random(60000, 70000))
end

--- A random number: special integers and floats, or random ones.
function U.rand_number()
  local r = math.random(6)
  if r == 1 then return SPECIAL_INTS[math.random(#SPECIAL_INTS)]
  elseif r == 2 then return SPECIAL_FLOATS[math.random(#SPECIAL_FLOATS)]
  elseif r == 3 then return math.random(math.mininteger, math.maxinteger)
  elseif r == 4 then return math.random(-1000, 1000)
  elseif r == 5 then return (math.random() - 0.5) * 10 ^ math.random(-300, 300)
  end
  return math.random() * 100
end

--- A random encodable value (nested up to depth levels).
function U.rand_value(depth)
  depth = depth or 3
  local r = math.random(depth > 0 and 10 or 7)
  if r == 1 then return nil
  elseif r == 2 then return math.random(2) == 1
  elseif r <= 4 then return U.rand_number()
  elseif r <= 7 then return U.rand_string()
  end
  local t = {}
  for i = 1, math.random(0, 6) do
    local v = U.rand_value(depth - 1)
    if v ~= nil then t[i] = v end
  end
  for _ = 1, math.random(0, 5) do
    local kr = math.random(4)
    local k
    if kr == 1 then k = U.rand_string()
    elseif kr == 2 then k = U.rand_number()
    elseif kr == 3 then k = math.random(2) == 1
    else k = math.random(-5, 50) end
    if k == k then   -- (not NaN: not a valid key)
      local v = U.rand_value(depth - 1)
      if v ~= nil then t[k] = v end
    end
  end
  return t
end

--- Deep equality with NaN equal to NaN and -0.0 distinct from 0.0, integer
-- and float subtypes distinct.
function U.same(a, b, seen)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then return false end
    if a ~= a then return b ~= b end
    if a == 0 and b == 0 and math.type(a) == "float" then return 1 / a == 1 / b end
    return a == b
  end
  if type(a) ~= "table" then return a == b end
  seen = seen or {}
  if seen[a] then return seen[a] == b end
  seen[a] = b
  for k, v in pairs(a) do
    if not U.same(v, b[k], seen) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

return U
