--- Shared spec helpers: unique names, a scratch directory, running Lua in a
-- subprocess, and the leak audit that runs after every spec file.
-- Loaded by busted as the --helper (see .busted) and required by specs as
-- `local helper = require "spec.helper"`; both get the same table.
if package.loaded["spec.helper"] then return package.loaded["spec.helper"] end

local ipc = require "lipc"

local M = {}
package.loaded["spec.helper"] = M

local counter = 0

--- A unique name for this test run: prefix .. "lipcspec.<pid>.<n>" .. suffix.
-- The default prefix "/" makes a POSIX IPC name.
function M.name(prefix, suffix)
  counter = counter + 1
  return ("%slipcspec.%d.%d%s"):format(prefix or "/", ipc.getpid and ipc.getpid() or 0, counter, suffix or "")
end

--- The scratch directory of this test run (removed by scripts/runtests.sh).
function M.tmpdir()
  local dir = os.getenv("LIPC_SPEC_TMP")
  if not dir then
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
  end
  return dir
end

--- A unique path inside the scratch directory.
function M.path(suffix)
  return M.name(M.tmpdir() .. "/", suffix)
end

--- Quote a string for sh.
function M.shquote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- The command line that runs lua5.4 with lipc on its paths.
function M.lua_cmd()
  return ("LUA_PATH=%s LUA_CPATH=%s lua5.4"):format(M.shquote(package.path), M.shquote(package.cpath))
end

--- Run a Lua chunk in a fresh lua5.4 process (a crash there fails only the
-- caller's assertion).  Returns ok (exit 0), exit code, combined output.
function M.run_lua(code)
  local file = M.path(".lua")
  local f = assert(io.open(file, "w"))
  f:write(code)
  f:close()
  local out = M.tmpdir() .. "/out." .. counter
  local ok, _, code_ = os.execute(M.lua_cmd() .. " " .. file .. " >" .. out .. " 2>&1")
  local rf = io.open(out)
  local text = rf and rf:read("a") or ""
  if rf then rf:close() end
  os.remove(out)
  os.remove(file)
  return ok == true, code_, text
end

--- Run a shell command; returns its output (stdout) and exit success.
function M.sh(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

--- Fork a child that runs fn and exits with 0 when it returns true (or
-- nothing), 1 otherwise or on error; returns its pid.  The child never
-- returns into busted.
function M.fork(fn, ...)
  local pid = assert(ipc.fork())
  if pid == 0 then
    local ok, res = pcall(fn, ...)
    if not ok then io.stderr:write(tostring(res), "\n") end
    io.stdout:flush()
    ipc.exit((ok and res ~= false) and 0 or 1)
  end
  return pid
end

-- ---- the leak audit --------------------------------------------------------

local function listdir(dir)
  local set = {}
  local p = io.popen("ls -A " .. dir .. " 2>/dev/null")
  if p then
    for line in p:lines() do set[line] = true end
    p:close()
  end
  return set
end

local function sysv(kind)
  local set = {}
  local f = io.open("/proc/sysvipc/" .. kind)
  if f then
    f:read("l")
    for line in f:lines() do
      local key, id = line:match("^%s*(%-?%d+)%s+(%d+)")
      if id then set[kind .. " key=" .. key .. " id=" .. id] = true end
    end
    f:close()
  end
  return set
end

--- Everything that could leak, as sets of strings.
function M.snapshot()
  collectgarbage()
  collectgarbage()
  local s = { fds = {}, shm = listdir("/dev/shm"), mqueue = listdir("/dev/mqueue"),
              tmp = listdir(M.tmpdir()), sysv = {} }
  for _, fd in ipairs(ipc.descriptors()) do s.fds[tostring(fd)] = true end
  for _, k in ipairs { "msg", "shm", "sem" } do
    for id in pairs(sysv(k)) do s.sysv[id] = true end
  end
  return s
end

local function fd_target(fd)
  local p = io.popen("readlink /proc/" .. ipc.getpid() .. "/fd/" .. fd .. " 2>/dev/null")
  local t = p and p:read("l") or "?"
  if p then p:close() end
  return t
end

--- What appeared since the snapshot `before`, as a list of descriptions.
function M.leaks(before)
  local now = M.snapshot()
  local found = {}
  for area, set in pairs(now) do
    for item in pairs(set) do
      if not before[area][item] then
        local extra = area == "fds" and (" -> " .. tostring(fd_target(item))) or ""
        found[#found + 1] = area .. ": " .. item .. extra
      end
    end
  end
  for _, pid in ipairs(ipc.children()) do
    found[#found + 1] = "child process still there: pid " .. pid
    if ipc.signal and ipc.signal.kill then pcall(ipc.signal.kill, pid, "KILL") end
    if ipc.wait then pcall(ipc.wait, pid, 5) end
  end
  table.sort(found)
  return found
end

-- Busted hooks: snapshot at each file's start, fail the file on a leak.
local ok_busted, busted = pcall(require, "busted")
if ok_busted and type(busted) == "table" and busted.subscribe then
  local before
  busted.subscribe({ "file", "start" }, function()
    before = M.snapshot()
    return nil, true
  end)
  busted.subscribe({ "file", "end" }, function(file)
    if before then
      local found = M.leaks(before)
      before = nil
      if #found > 0 then
        error(("%s leaked:\n  %s"):format(file.name, table.concat(found, "\n  ")), 0)
      end
    end
    return nil, true
  end)
end

return M
