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

--- The command line that runs lua5.4 with lipc as the user and group uid
-- (as root, through setpriv): lipc is copied once into a directory of the
-- scratch directory that every user may read, since the checkout itself may
-- be private (a umask of 077).  The scratch directory is opened to others
-- (o+x), so scripts for the command go there with mode 644.  Returns the
-- command and a function that removes the copy (for `finally`: the leak
-- audit counts what a spec leaves in the scratch directory).
function M.lua_cmd_as(uid)
  local dir = M.tmpdir() .. "/lipc-for-others"
  local function remove() os.execute("rm -rf " .. M.shquote(dir)) end
  if not M.exists(dir) then
    local so = assert(package.searchpath("lipc.core", package.cpath), "lipc.core not on package.cpath")
    local init = assert(package.searchpath("lipc", package.path), "lipc not on package.path")
    local luadir = init:match("^(.*)/init%.lua$")
    assert(os.execute(("mkdir -p %s/lipc && cp %s/*.lua %s %s/lipc/ && chmod -R a+rX %s && chmod o+x %s"):format(
      M.shquote(dir), M.shquote(luadir), M.shquote(so), M.shquote(dir), M.shquote(dir), M.shquote(M.tmpdir()))))
  end
  return ("setpriv --reuid=%d --regid=%d --clear-groups env LUA_PATH=%s LUA_CPATH=%s lua5.4"):format(uid, uid,
    M.shquote(dir .. "/?.lua;" .. dir .. "/?/init.lua;;"), M.shquote(dir .. "/?.so;;")), remove
end

--- The process's umask (from /proc/self/status).
function M.umask()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(assert(s:match("Umask:%s*(%d+)"), "no Umask line"), 8)
end

--- The permission bits a new file created with mode gets under the umask,
-- as `stat -c %a` prints them.
function M.masked(mode)
  return ("%o"):format(mode & ~M.umask())
end

--- Run a Lua chunk in a fresh lua5.4 process (a crash there fails only the
-- caller's assertion), killed after limit seconds when given (a chunk that
-- could loop for ever then fails its test instead of hanging the suite).
-- Returns ok (exit 0), exit code, combined output.
function M.run_lua(code, limit)
  local file = M.path(".lua")
  local f = assert(io.open(file, "w"))
  f:write(code)
  f:close()
  local out = M.tmpdir() .. "/out." .. counter
  local cmd = M.lua_cmd()
  if limit then cmd = cmd:gsub("lua5.4$", ("timeout -s KILL %d lua5.4"):format(limit)) end
  local ok, _, code_ = os.execute(cmd .. " " .. file .. " </dev/null >" .. out .. " 2>&1")
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

--- Run a shell command with only descriptors 0, 1 and 2 open: what the
-- caller's parent leaked to it (a CI runner's pipes, say) is closed first,
-- so a test that lowers `ulimit -n` counts only its own descriptors.
-- Returns like M.sh.
function M.sh_own_fds(cmd)
  return M.sh("bash -c " .. M.shquote('for f in /proc/$$/fd/*; do n=${f##*/}; ' ..
                                      '[ "$n" -gt 2 ] && eval "exec $n>&-"; done; exec sh -c "$1"') ..
              " lipc-sh " .. M.shquote(cmd))
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

-- ---- waiting, processes and their system calls -----------------------------

--- Wait (up to timeout seconds, default 30) for the forked child pid and
-- assert that it exited with code 0.
function M.reap(pid, timeout)
  local la = require "luassert"
  local how, code = ipc.wait(pid, timeout or 30)
  la.equal("exited", how)
  la.equal(0, code)
end

--- The state letter of process pid ("S", "R", "Z", ...), nil when it is gone.
function M.proc_state(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  local state = f and (f:read("l") or ""):match("%) (%a)")
  if f then f:close() end
  return state
end

--- x86_64 numbers of the system calls a test waits to see a process blocked in.
M.SYS = {
  read = 0, write = 1, poll = 7, connect = 42, recvfrom = 45, semop = 65, msgsnd = 69, msgrcv = 70,
  futex = 202, semtimedop = 220,
  clock_nanosleep = 230, epoll_wait = 232, mq_timedsend = 242, mq_timedreceive = 243,
  ppoll = 271, epoll_pwait = 281, pwritev2 = 328,
}

--- The system calls of lipc's waits on a descriptor (the default of blocked_in).
M.WAIT_CALLS = { "read", "poll", "ppoll", "epoll_wait", "epoll_pwait" }

--- true on x86_64, the machine M.SYS describes.
M.is_x86_64 = M.sh("uname -m"):match("x86_64") ~= nil

--- true when process pid sleeps (state S) in one of the system calls named in
-- the list calls (keys of M.SYS; default M.WAIT_CALLS): the call under test,
-- not start-up.
function M.blocked_in(pid, calls)
  local f = io.open("/proc/" .. pid .. "/syscall")
  if not f then return false end
  local nr = tonumber((f:read("l") or ""):match("^(%d+)"))
  f:close()
  if M.proc_state(pid) ~= "S" then return false end
  for _, name in ipairs(calls or M.WAIT_CALLS) do
    if nr == assert(M.SYS[name], name) then return true end
  end
  return false
end

--- Wait (up to 10 s) until process pid sleeps in one of the system calls
-- named in calls (see blocked_in); true when it did.  Off x86_64 returns true
-- at once: a test using it still holds, only less strictly.
function M.wait_blocked(pid, calls)
  if not M.is_x86_64 then return true end
  for _ = 1, 1000 do
    if M.blocked_in(pid, calls) then return true end
    ipc.poll({}, 0.01)
  end
  return false
end

--- Run code in a fresh lua5.4 (with `ipc` already required) and send it SIGINT
-- (Ctrl-C) once it sleeps in the call under test: one of opts.calls (names of
-- M.SYS, default M.WAIT_CALLS), after it printed the line opts.ready when
-- given.  A child that ignores Ctrl-C is killed after 10 s.  Its output goes
-- to a file, so that a process it forks cannot keep the caller waiting.
-- Returns true when it exited 0 (and ended by itself), its output (stdout
-- and stderr) and its exit status.
function M.ctrl_c(code, opts)
  opts = opts or {}
  local file = M.script('local ipc = require "lipc"\nio.stdout:write(ipc.getpid(), "\\n")\nio.stdout:flush()\n' ..
                        code, ".lua")
  local out = M.path(".out")
  local p = assert(io.popen(("%s %s >%s 2>&1; echo $?"):format(M.lua_cmd(), file, out)))
  local function output()
    local f = io.open(out)
    local text = f and f:read("a") or ""
    if f then f:close() end
    return text
  end
  local pid, alive
  for _ = 1, 1000 do   -- up to 10 s for its pid (and the ready line)
    local text = output()
    pid = math.tointeger(tonumber(text:match("^(%d+)\n")))
    if pid and (not opts.ready or text:find("\n" .. opts.ready .. "\n", 1, true)) then break end
    ipc.poll({}, 0.01)
  end
  if pid then
    for _ = 1, 1000 do   -- up to 10 s for the child to reach the call
      if M.blocked_in(pid, opts.calls) then break end
      ipc.poll({}, 0.01)
    end
    ipc.signal.kill(pid, "INT")
    for _ = 1, 1000 do   -- up to 10 s for it to end
      local state = M.proc_state(pid)
      if state == nil or state == "Z" then break end
      ipc.poll({}, 0.01)
    end
    local state = M.proc_state(pid)
    alive = state ~= nil and state ~= "Z"
    if alive then ipc.signal.kill(pid, "KILL") end
  end
  local status = math.tointeger(tonumber(p:read("a")))
  p:close()
  local text = output():gsub("^%d+\n", "", 1)
  os.remove(file)
  os.remove(out)
  return status == 0 and not alive, text, status
end

--- Fork a child that calls make() (which creates an object under a generated
-- name and returns it), sends the object's name back and then blocks until
-- it is killed.  Returns the name (nil if the child failed) and the child's
-- pid; the test kills and waits for the child.
function M.fork_holding(make)
  local r, w = assert(ipc.pipe())
  local pid = M.fork(function()
    local obj = make()
    assert(w:write(obj:name() .. "\n"))
    ipc.poll({}, 60)   -- sleeps until killed
    return obj ~= nil
  end)
  w:close()
  local name = r:read("l", 20)
  r:close()
  return name, pid
end

-- ---- the file system, descriptors and System V ids -------------------------

--- true when something exists at path, of any type (sockets and FIFOs
-- included: it is not opened, which would block on a FIFO).
function M.exists(path)
  return os.execute("test -e " .. M.shquote(path)) == true
end

--- The flags of descriptor fd of this process as a number (from the octal
-- "flags:" line of /proc/self/fdinfo/<fd>), and the whole fdinfo text.
function M.fdinfo(fd)
  local f = assert(io.open("/proc/self/fdinfo/" .. fd))
  local text = f:read("a")
  f:close()
  return tonumber(text:match("flags:%s*(%d+)"), 8), text
end

--- true when the System V object id of kind ("msg", "sem" or "shm") is listed
-- in /proc/sysvipc/<kind>.
function M.sysv_exists(kind, id)
  for line in io.lines("/proc/sysvipc/" .. kind) do
    if tonumber(line:match("^%s*%-?%d+%s+(%d+)")) == id then return true end
  end
  return false
end

-- ---- outside peers: Python and C programs ----------------------------------

--- The Python with python3-sysv-ipc (not the `python3` on PATH).
M.PYTHON = "/usr/bin/python3"

--- Write text to a new scratch file ending in suffix (default ".py") and
-- return its path; the caller removes it.
function M.script(text, suffix)
  local path = M.path(suffix or ".py")
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

--- Run a Python program (its source text) with M.PYTHON; returns its output
-- (stdout and stderr) and whether it exited 0.
function M.python(src)
  local file = M.script(src, ".py")
  local out, ok = M.sh(M.PYTHON .. " " .. file .. " 2>&1")
  os.remove(file)
  return out, ok
end

--- Compile a C program (its source text) with gcc and the extra arguments
-- flags (libraries: "-lrt") into a scratch executable.  Returns its path
-- (the caller removes it), or nil and gcc's messages.
function M.compile_c(src, flags)
  local file = M.script(src, ".c")
  local exe = M.path(".bin")
  local out, ok = M.sh(("gcc -o %s %s %s 2>&1"):format(exe, file, flags or ""))
  os.remove(file)
  if not ok then
    os.remove(exe)
    return nil, out
  end
  return exe, out
end

--- Objects and processes a spec file makes, cleaned up after each test:
-- objects closed, processes still running killed, all waited and closed.
-- Call at a spec file's top level, passing busted's after_each:
-- `local keep, track = helper.tracker(after_each)`; `keep(obj)` and
-- `track(process)` assert their argument and return it.
function M.tracker(after_each)
  local made, procs = {}, {}
  after_each(function()
    for _, p in ipairs(procs) do
      if ipc.type(p) == "process" then
        if p:status() == nil then pcall(p.kill, p, "KILL") end
        p:wait(10)
        p:close()
      end
    end
    for _, o in ipairs(made) do o:close() end
    made, procs = {}, {}
  end)
  local function keep(o, ...)
    assert(o, ...)
    made[#made + 1] = o
    return o
  end
  local function track(p, ...)
    assert(p, ...)
    procs[#procs + 1] = p
    return p
  end
  return keep, track
end

-- ---- the leak audit (lipc.testing, with the scratch directory and netns) --

local testing = require "lipc.testing"
local audit_opts = { dirs = { tmp = M.tmpdir() }, netns = true }

--- Everything that could leak (a lipc.testing snapshot).
function M.snapshot()
  return testing.snapshot(audit_opts)
end

--- What appeared since the snapshot `before`, as a list of descriptions
-- ("fds: 7 -> pipe:[123]", "shm: x", "child process still there: pid 9").
function M.leaks(before)
  local found = {}
  for _, r in ipairs(testing.leaks(before)) do
    if r.area == "child" then
      found[#found + 1] = "child process still there: pid " .. r.item
    else
      found[#found + 1] = r.area .. ": " .. r.item .. (r.detail and (" -> " .. r.detail) or "")
    end
  end
  table.sort(found)
  return found
end

-- Busted hooks: snapshot at each file's start, fail the file on a leak.
local ok_busted, busted = pcall(require, "busted")
if ok_busted and type(busted) == "table" and busted.subscribe then
  -- busted keeps only the last finally() of a test; make them stack, so a
  -- test can register a clean-up for each thing it makes (run last first,
  -- every one of them even when an earlier one fails).
  busted.subscribe({ "test", "start" }, function(element)
    local env = element.env
    local register = env and env.finally
    if register then
      local fns = {}
      env.finally = function(fn)
        fns[#fns + 1] = fn
        if #fns == 1 then
          register(function()
            local first_err
            for i = #fns, 1, -1 do
              local ok, err = pcall(fns[i])
              if not ok and first_err == nil then first_err = err end
            end
            if first_err ~= nil then error(first_err, 0) end
          end)
        end
      end
    end
    return nil, true
  end)

  -- the leak audit after every spec file
  testing.busted { per = "file", dirs = audit_opts.dirs, netns = true }
end

return M
