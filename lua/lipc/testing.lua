--- lipc.testing: the leak audit of lipc's own suite, for users' tests.
-- A snapshot records what a process holds and what exists on the machine
-- that a test could leave behind: this process's descriptors, the entries
-- of /dev/shm and of every mqueue file system, System V queues, segments and
-- semaphore sets, and optionally more directories and network namespaces.
-- `check` compares the present with a snapshot and names what appeared;
-- child processes still there are named, killed and reaped.
--
--     local testing = require "lipc.testing"
--     local snap = testing.snapshot()
--     ... the code under test ...
--     assert(testing.check(snap))   -- nil, "leaked: fd 7 (pipe), /dev/shm/x, child 1234"
--
-- In a busted spec file, `testing.busted()` at the top level audits every
-- test of the file (or, called from a `--helper` file, every test of the run).
-- @module lipc.testing

local ipc = require "lipc"

local testing = {}

-- The entries of directory dir as a set (empty when it cannot be read).
local function listdir(dir)
  local set = {}
  local p = io.popen("ls -A '" .. dir:gsub("'", "'\\''") .. "' 2>/dev/null")
  if p then
    for line in p:lines() do set[line] = true end
    p:close()
  end
  return set
end

--- The mount points of the mqueue file systems of this mount namespace
-- (from /proc/self/mountinfo; usually `{ "/dev/mqueue" }`, `{}` where none
-- is mounted).
-- @treturn {string,...}
function testing.mqueue_dirs()
  local dirs, seen = {}, {}
  local f = io.open("/proc/self/mountinfo")
  if not f then return dirs end
  for line in f:lines() do
    local before, fstype = line:match("^(.-) %- (%S+)")
    if fstype == "mqueue" then
      local mnt = before:match("^%S+ %S+ %S+ %S+ (%S+)")
      if mnt then
        mnt = mnt:gsub("\\(%d%d%d)", function(o) return string.char(tonumber(o, 8)) end)
        if not seen[mnt] then
          seen[mnt] = true
          dirs[#dirs + 1] = mnt
        end
      end
    end
  end
  f:close()
  return dirs
end

-- System V objects of kind ("msg", "shm", "sem") as a set of
-- "<kind> key=<key> id=<id>" strings.
local function sysv(kind, set)
  local f = io.open("/proc/sysvipc/" .. kind)
  if not f then return end
  f:read("l")
  for line in f:lines() do
    local key, id = line:match("^%s*(%-?%d+)%s+(%d+)")
    if id then set[kind .. " key=" .. key .. " id=" .. id] = true end
  end
  f:close()
end

-- The network namespaces (`ip netns list`) as a set of names.
local function netns()
  local set = {}
  local p = io.popen("ip netns list 2>/dev/null")
  if p then
    for line in p:lines() do
      local name = line:match("^(%S+)")
      if name then set[name] = true end
    end
    p:close()
  end
  return set
end

local function check_opts(opts, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(("bad argument #1 to '%s' (table expected, got %s)"):format(fname, type(opts)), 3)
  end
  for k in pairs(opts) do
    if k ~= "dirs" and k ~= "netns" and k ~= "per" then
      error(("bad argument #1 to '%s' (unknown option '%s')"):format(fname, tostring(k)), 3)
    end
  end
  if opts.dirs ~= nil and type(opts.dirs) ~= "table" then
    error(("bad argument #1 to '%s' (option 'dirs': table expected, got %s)"):format(fname, type(opts.dirs)), 3)
  end
  return opts
end

--- Record what could leak.
-- Collects garbage first (twice), so that objects nobody refers to any more
-- are closed and do not count.
-- @tparam[opt] table opts `dirs`: more directories to watch, a map from a
--   label to a path (`{ tmp = "/tmp/mytest" }`) or a list of paths; `netns`:
--   true to watch network namespaces (`ip netns list`)
-- @treturn table the snapshot, for `check` or `leaks`
function testing.snapshot(opts)
  opts = check_opts(opts, "snapshot")
  collectgarbage()
  collectgarbage()
  local s = { fds = {}, shm = listdir("/dev/shm"), mqueue = {}, sysv = {}, _dirs = {}, _opts = opts }
  for _, fd in ipairs(assert(ipc.descriptors())) do s.fds[tostring(fd)] = true end
  for _, dir in ipairs(testing.mqueue_dirs()) do
    for name in pairs(listdir(dir)) do s.mqueue[name] = dir end
  end
  for _, k in ipairs { "msg", "shm", "sem" } do sysv(k, s.sysv) end
  for label, dir in pairs(opts.dirs or {}) do
    if math.type(label) == "integer" then label = dir end
    s[label] = listdir(dir)
    s._dirs[label] = dir
  end
  if opts.netns then s.netns = netns() end
  return s
end

-- What descriptor fd of this process refers to (readlink of /proc/self/fd).
local function fd_target(fd)
  local p = io.popen("readlink /proc/" .. ipc.getpid() .. "/fd/" .. fd .. " 2>/dev/null")
  local t = p and p:read("l") or "?"
  if p then p:close() end
  return t
end

-- A short kind for descriptor fd: the lipc object holding it, or what
-- its target says ("pipe", "socket", "eventfd", a path).
local function fd_kind(fd, target, lipc_fds)
  if lipc_fds[fd] then return lipc_fds[fd] end
  local anon = target:match("^anon_inode:%[?([^%]]+)%]?$")
  if anon then return anon end
  return target:match("^(%a+):%[%d+%]$") or target
end

--- What appeared since the snapshot `before`: a sorted list of records
-- `{ area =, item =, detail =, text = }`, area one of `"fds"`, `"shm"`,
-- `"mqueue"`, `"sysv"`, `"netns"`, a `dirs` label, or `"child"`; `text`
-- is the short description `check` joins ("fd 7 (pipe)").  Child processes
-- still there are killed (SIGKILL) and reaped, so one leaking test does
-- not hang the rest.
-- @tparam table before a snapshot
-- @treturn {table,...}
function testing.leaks(before)
  if type(before) ~= "table" or before.fds == nil then
    error("bad argument #1 to 'leaks' (snapshot expected, got " .. type(before) .. ")", 2)
  end
  local now = testing.snapshot(before._opts)
  local lipc_fds = {}
  for _, o in ipairs(ipc.audit()) do
    if o.fd then lipc_fds[tostring(o.fd)] = "lipc." .. o.kind end
  end
  local found = {}
  for area, set in pairs(now) do
    if area:sub(1, 1) ~= "_" then
      for item, where in pairs(set) do
        if not before[area][item] then
          local r = { area = area, item = item }
          if area == "fds" then
            r.detail = fd_target(item)
            r.text = ("fd %s (%s)"):format(item, fd_kind(item, r.detail, lipc_fds))
          elseif area == "shm" then
            r.text = "/dev/shm/" .. item
          elseif area == "mqueue" then
            r.text = where .. "/" .. item
          elseif area == "sysv" then
            r.text = "System V " .. item
          elseif area == "netns" then
            r.text = "network namespace " .. item
          else
            r.text = now._dirs[area] .. "/" .. item
          end
          found[#found + 1] = r
        end
      end
    end
  end
  for _, pid in ipairs(ipc.children()) do
    found[#found + 1] = { area = "child", item = tostring(pid), text = "child " .. pid }
    pcall(ipc.signal.kill, pid, "KILL")
    pcall(ipc.wait, pid, 5)
  end
  table.sort(found, function(a, b)
    if a.area ~= b.area then return a.area < b.area end
    local na, nb = tonumber(a.item), tonumber(b.item)
    if na and nb then return na < nb end
    return a.item < b.item
  end)
  return found
end

--- Compare the present with a snapshot.
-- @tparam table before a snapshot
-- @treturn[1] boolean true when nothing leaked
-- @treturn[2] nil
-- @treturn[2] string `"leaked: fd 7 (pipe), /dev/shm/x, child 1234"`
function testing.check(before)
  if type(before) ~= "table" or before.fds == nil then
    error("bad argument #1 to 'check' (snapshot expected, got " .. type(before) .. ")", 2)
  end
  local found = testing.leaks(before)
  if #found == 0 then return true end
  local texts = {}
  for i, r in ipairs(found) do texts[i] = r.text end
  return nil, "leaked: " .. table.concat(texts, ", ")
end

--- Audit every test of a busted run.
-- Call it at the top level of a spec file (it registers a `before_each`
-- that takes a snapshot and an `after_each` that fails the test with
-- `check`'s message, outermost of all, so your own `after_each` clean-ups
-- run first), or in a file given to busted's `--helper` (every test of
-- every file).  With `per = "file"` one snapshot is taken when each spec
-- file starts and the file fails when it leaked (what lipc's own suite
-- does: a test may hand objects to the next one).
-- @tparam[opt] table opts `per`: `"test"` (default) or `"file"`; `dirs`
--   and `netns` as for `snapshot`
-- @treturn boolean true
-- @usage -- spec/queue_spec.lua
-- require("lipc.testing").busted()
-- describe("my queue", function() ... end)
function testing.busted(opts)
  opts = check_opts(opts, "busted")
  local per = opts.per or "test"
  if per ~= "test" and per ~= "file" then
    error("bad argument #1 to 'busted' (option 'per': \"test\" or \"file\" expected)", 2)
  end
  local snap_opts = { dirs = opts.dirs, netns = opts.netns }
  local ok, busted = pcall(require, "busted")
  if not ok or type(busted) ~= "table" or not busted.subscribe then
    error("lipc.testing.busted: not running under busted", 2)
  end
  local before
  if per == "file" then
    busted.subscribe({ "file", "start" }, function()
      before = testing.snapshot(snap_opts)
      return nil, true
    end)
    busted.subscribe({ "file", "end" }, function(file)
      if before then
        local snap = before
        before = nil
        local good, msg = testing.check(snap)
        if not good then error(("%s %s"):format(file.name, msg), 0) end
      end
      return nil, true
    end)
  else
    -- busted reports an after_each failure under "after_each": name the test
    local current
    busted.subscribe({ "test", "start" }, function(element)
      local names, e = {}, element
      while e and e.descriptor ~= "file" and e.descriptor ~= "suite" do
        if e.name then table.insert(names, 1, e.name) end
        e = busted.parent(e)
      end
      current = table.concat(names, " ")
      return nil, true
    end)
    busted.before_each(function() before, current = testing.snapshot(snap_opts), nil end)
    busted.after_each(function()
      if before then
        local snap = before
        before = nil
        local good, msg = testing.check(snap)
        if not good then error((current and (current .. ": ") or "") .. msg, 0) end
      end
    end)
  end
  return true
end

return testing
