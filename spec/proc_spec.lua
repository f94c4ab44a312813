local ipc = require "lipc"
local helper = require "spec.helper"

local E = ipc.errno

-- Objects and processes made by the running test, cleaned up after it.
local keep, track = helper.tracker(after_each)

-- A pipe whose ends are closed after the test.
local function pipe(opts)
  local r, w = assert(ipc.pipe(opts))
  return keep(r), keep(w)
end

-- Everything a program prints on stdout (run through ipc.exec).
local function output(argv)
  argv.stdout = "pipe"
  local p = track(ipc.exec(argv))
  local out = p.stdout:read("a", 10)
  p.stdout:close()
  return out, p:wait(10)
end

describe("ipc.fork and ipc.wait", function()
  it("forks a child and reaps its exit code", function()
    local pid = assert(ipc.fork())
    if pid == 0 then ipc.exit(7) end
    assert.is_true(pid > 0)
    assert.same({ "exited", 7 }, { ipc.wait(pid, 10) })
    -- waiting again gives the cached result, and no zombie is left
    assert.same({ "exited", 7 }, { ipc.wait(pid) })
    assert.same({}, ipc.children())
  end)

  it("reports a child killed by a signal", function()
    local r, w = pipe()
    local pid = helper.fork(function()
      w:close()
      r:read(1)  -- blocks until killed
      return true
    end)
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { ipc.wait(pid, 0) })
    local t0 = ipc.clock()
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { ipc.wait(pid, 0.2) })
    assert.is_true(ipc.clock() - t0 < 3)
    assert(os.execute("kill -KILL " .. pid))
    assert.same({ "signaled", 9 }, { ipc.wait(pid, 10) })
  end)

  it("fails for a pid that is not a child", function()
    local n, msg, err = ipc.wait(1, 0)
    assert.is_nil(n)
    assert.matches("No child processes", msg)
    assert.equal(E.ECHILD, err)
  end)

  it("flushes io buffers before forking", function()
    local ok, _, out = helper.run_lua([[
      local ipc = require "lipc"
      io.stdout:setvbuf("full")
      io.write("once\n")
      local pid = ipc.fork()
      if pid == 0 then ipc.exit(0) end
      ipc.wait(pid)
      local p = ipc.spawn(function() end)
      p:wait()
    ]])
    assert.is_true(ok, out)
    assert.equal("once\n", out)
  end)

  it("returns getpid and getppid", function()
    local r, w = pipe()
    local p = track(ipc.spawn(function()
      w:write(ipc.getppid() .. " " .. ipc.getpid() .. "\n")
    end))
    local line = r:read("l", 10)
    assert.equal(ipc.getpid() .. " " .. p.pid, line)
  end)
end)

describe("ipc.spawn", function()
  it("runs a function with arguments and exits with its result", function()
    local r, w = pipe()
    local p = track(ipc.spawn(function(a, b)
      w:write(a .. b)
      return 3
    end, "x", "y"))
    assert.equal("xy", r:read(2, 10))
    assert.equal("number", type(p.pid))
    assert.same({ "exited", 3 }, { p:wait(10) })
    assert.same({ "exited", 3 }, { p:wait() })
    assert.matches("^lipc%.process%(pid=%d+, exited 3%)$", tostring(p))
  end)

  it("maps results to exit codes", function()
    local cases = {
      { function() end, 0 },
      { function() return true end, 0 },
      { function() return false end, 1 },
      { function() return 42 end, 42 },
      { function() return 256 + 5 end, 5 },
      { function() return "text" end, 0 },
    }
    for _, c in ipairs(cases) do
      local p = track(ipc.spawn(c[1]))
      assert.same({ "exited", c[2] }, { p:wait(10) })
    end
  end)

  it("exits 1 with the traceback on stderr when the function errors", function()
    local ok, code, out = helper.run_lua([[
      local ipc = require "lipc"
      local p = ipc.spawn(function() error("boom in child") end)
      local how, c = p:wait(10)
      print(how, c)
    ]])
    assert.is_true(ok, out)
    assert.equal(0, code)
    assert.matches("boom in child", out)
    assert.matches("stack traceback", out)
    assert.matches("exited\t1", out)
  end)

  it("never returns into the caller", function()
    local ok, _, out = helper.run_lua([[
      local ipc = require "lipc"
      local p = ipc.spawn(function() return 0 end)
      print("after spawn " .. ipc.getpid())
      p:wait(10)
    ]])
    assert.is_true(ok, out)
    local n = select(2, out:gsub("after spawn", ""))
    assert.equal(1, n)
  end)

  it("gives the child an empty signal mask", function()
    local r, w = pipe()
    local p = track(ipc.spawn(function()
      local f = io.open("/proc/self/status")
      local s = f:read("a")
      f:close()
      w:write(s:match("SigBlk:%s*(%x+)") .. "\n")
    end))
    assert.equal(0, tonumber(r:read("l", 10), 16))
    assert.same({ "exited", 0 }, { p:wait(10) })
  end)
end)

describe("ipc.exec", function()
  it("runs a program and returns a process handle", function()
    local p = track(ipc.exec { "sh", "-c", "exit 5" })
    assert.is_true(p.pid > 0)
    assert.matches("^lipc%.process%(pid=%d+%)$", tostring(p))
    assert.same({ "exited", 5 }, { p:wait(10) })
  end)

  it("connects stdin and stdout pipes", function()
    local p = track(ipc.exec { "tr", "a-z", "A-Z", stdin = "pipe", stdout = "pipe" })
    assert.matches("^lipc%.pipe%(fd=%d+, write%)$", tostring(p.stdin))
    assert.matches("^lipc%.pipe%(fd=%d+, read%)$", tostring(p.stdout))
    assert.is_nil(p.stderr)
    p.stdin:write("hello lipc\n")
    p.stdin:close()
    assert.equal("HELLO LIPC\n", p.stdout:read("a", 10))
    p.stdout:close()
    assert.same({ "exited", 0 }, { p:wait(10) })
  end)

  it("captures stderr through a pipe", function()
    local p = track(ipc.exec { "sh", "-c", "echo oops >&2", stderr = "pipe" })
    assert.equal("oops\n", p.stderr:read("a", 10))
    p.stderr:close()
    assert.same({ "exited", 0 }, { p:wait(10) })
  end)

  it("uses a lipc object as a standard stream", function()
    local r, w = pipe()
    local p = track(ipc.exec { "echo", "via object", 42, stdout = w })
    w:close()
    assert.equal("via object 42\n", r:read("a", 10))
    assert.same({ "exited", 0 }, { p:wait(10) })
  end)

  it("connects /dev/null and inherits by default", function()
    local out = output { "sh", "-c", "readlink /proc/self/fd/0; readlink /proc/self/fd/2 >&1", stdin = "null",
                         stderr = "null" }
    assert.equal("/dev/null\n/dev/null\n", out)
    local r, w = pipe()
    local p = track(ipc.exec { "sh", "-c", "exec 3>&1; readlink /proc/self/fd/3 >&2", stdout = "null", stderr = w })
    w:close()
    assert.equal("/dev/null\n", r:read("a", 10))
    assert.same({ "exited", 0 }, { p:wait(10) })
    local mine = helper.sh("readlink /proc/" .. ipc.getpid() .. "/fd/2")
    out = output { "sh", "-c", "readlink /proc/self/fd/2", stderr = "inherit" }
    assert.equal(mine, out)
  end)

  it("adds to and removes from the environment", function()
    local out = output { "sh", "-c", 'echo "$LIPC_A|$LIPC_N|${HOME-unset}|$PATH"',
                         env = { LIPC_A = "one two", LIPC_N = 7, HOME = false } }
    assert.equal("one two|7|unset|" .. os.getenv("PATH") .. "\n", out)
  end)

  it("searches the program in the new PATH", function()
    local dir = helper.path(".bin")
    assert(os.execute("mkdir " .. dir .. " && printf '#!/bin/sh\\necho found me\\n' > " .. dir
                      .. "/lipcprog && chmod +x " .. dir .. "/lipcprog"))
    finally(function() os.execute("rm -rf " .. dir) end)
    local out = output { "lipcprog", env = { PATH = dir .. ":/usr/bin:/bin" } }
    assert.equal("found me\n", out)
  end)

  it("changes the working directory", function()
    assert.equal("/tmp\n", (output { "pwd", cwd = "/tmp" }))
    local n, msg, err = ipc.exec { "pwd", cwd = "/nonexistent/dir" }
    assert.is_nil(n)
    assert.equal("chdir /nonexistent/dir: No such file or directory", msg)
    assert.equal(E.ENOENT, err)
  end)

  it("reports a missing program", function()
    local before = #ipc.descriptors()
    local n, msg, err = ipc.exec { "lipc-no-such-program", stdout = "pipe" }
    assert.is_nil(n)
    assert.equal("exec lipc-no-such-program: No such file or directory", msg)
    assert.equal(E.ENOENT, err)
    n, msg, err = ipc.exec { "/nonexistent/prog" }
    assert.is_nil(n)
    assert.equal("exec /nonexistent/prog: No such file or directory", msg)
    assert.equal(E.ENOENT, err)
    n, msg, err = ipc.exec { "/etc/passwd" }
    assert.is_nil(n)
    assert.equal(E.EACCES, err, msg)
    -- execve itself fails (after the pipes exist): a script without "#!"
    local script = helper.path(".sh")
    assert(os.execute("printf 'echo hi\\n' > " .. script .. " && chmod +x " .. script))
    n, msg, err = ipc.exec { script, stdin = "pipe", stdout = "pipe", stderr = "pipe" }
    os.remove(script)
    assert.is_nil(n)
    assert.equal("exec " .. script .. ": Exec format error", msg)
    assert.equal(E.ENOEXEC, err)
    collectgarbage()
    assert.equal(before, #ipc.descriptors())
    assert.same({}, ipc.children())
  end)

  it("starts programs with default dispositions", function()
    local file = helper.path(".lua")
    local f = assert(io.open(file, "w"))
    f:write([[
      local ipc = require "lipc"
      local p = ipc.exec { "grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status", stdout = "pipe" }
      io.write(p.stdout:read("a"))
      p:wait()
    ]])
    f:close()
    finally(function() os.remove(file) end)
    -- the shell ignores HUP and USR1 for lua5.4; the exec'd grep must not
    local out = helper.sh("trap '' HUP USR1; " .. helper.lua_cmd() .. " " .. file)
    assert.equal(0, tonumber(out:match("SigIgn:%s*(%x+)"), 16))
    assert.equal(0, tonumber(out:match("SigBlk:%s*(%x+)"), 16))
  end)
end)

-- ipc.run: spec/run_spec.lua

describe("lipc.process", function()
  it("times out a wait, then kills by name and by number", function()
    local p = track(ipc.exec { "sleep", "30" })
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { p:wait(0) })
    local t0 = ipc.clock()
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { p:wait(0.2) })
    assert.is_true(ipc.clock() - t0 < 3)
    assert.is_nil(p:status())
    assert.is_true(p:kill("TERM"))
    assert.same({ "signaled", 15 }, { p:wait(10) })
    assert.same({ "signaled", 15 }, { p:status() })
    local q = track(ipc.exec { "sleep", "30" })
    assert.is_true(q:kill(9))
    assert.same({ "signaled", 9 }, { q:wait(10) })
  end)

  it("never signals a reaped process", function()
    local p = track(ipc.exec { "true" })
    assert.same({ "exited", 0 }, { p:wait(10) })
    local n, msg, err = p:kill("KILL")
    assert.is_nil(n)
    assert.matches("No such process", msg)
    assert.equal(E.ESRCH, err)
  end)

  it("agrees with ipc.wait on the same pid", function()
    local p = track(ipc.exec { "sh", "-c", "exit 4" })
    assert.same({ "exited", 4 }, { ipc.wait(p.pid, 10) })
    assert.same({ "exited", 4 }, { p:wait(10) })
  end)

  it("gives a pidfd that becomes readable at exit", function()
    local r, w = pipe()
    local p = track(ipc.spawn(function() r:read(1) end))
    local fd = p:fileno()
    local _, info = helper.fdinfo(fd)
    assert.equal(tostring(p.pid), info:match("Pid:%s*(%d+)"))
    if ipc.poll then
      assert.same({}, ipc.poll({ p }, 0))
      w:write("x")
      local ready = ipc.poll({ p }, 10)
      assert.equal(p, ready[1])
    else
      w:write("x")
    end
    assert.same({ "exited", 0 }, { p:wait(10) })
  end)

  it("close releases only the pidfd; a finished child is reaped", function()
    local r, w = pipe()
    w:close()
    local before = #ipc.descriptors()
    local p = assert(ipc.exec { "true" })
    local pid = p.pid
    assert.equal(before + 1, #ipc.descriptors())
    -- wait for the exit without reaping it
    while p:status() == nil do r:read(1, 0.01) end
    assert.is_true(p:close())
    assert.equal(before, #ipc.descriptors())
    assert.equal(pid, p.pid)
    assert.error_matches(function() p:wait() end, "attempt to use a closed lipc.process")
    assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
  end)

  it("is collected without killing or blocking, and listed by audit", function()
    local r, w = pipe()
    local p = assert(ipc.spawn(function() r:read(1) end))
    local pid = p.pid
    local seen = false
    for _, o in ipairs(ipc.audit()) do
      if o.kind == "process" and o.pid == pid then seen = true end
    end
    assert.is_true(seen)
    p = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    -- still running: the collection neither killed it nor waited
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { ipc.wait(pid, 0) })
    w:write("x")
    assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
  end)
end)

describe("Ctrl-C", function()
  for name, call in pairs {
    ["p:wait()"] = "return p:wait()",
    ["ipc.wait(pid)"] = "return ipc.wait(p.pid)",
  } do
    it("interrupts a blocking " .. name, function()
      -- the sleeping grandchild keeps no pipe and is killed whatever happens
      local ok, out, status = helper.ctrl_c("local p = ipc.exec { 'sleep', '30', stdout = 'null', stderr = 'null' }\n"
        .. "local ok, e = pcall(function()\n"
        .. "  io.stdout:write('ready\\n'); io.stdout:flush()\n  " .. call .. "\nend)\n"
        .. "p:kill('KILL'); p:wait()\n"
        .. "error(ok and 'not interrupted' or e, 0)\n", { ready = "ready" })
      assert.is_false(ok)
      assert.equal(1, status)
      assert.matches("interrupted!", out)
    end)
  end
end)

describe("ipc processes bad input", function()
  it("rejects bad arguments to wait", function()
    assert.error_matches(function() ipc.wait("x") end, "integer expected")
    assert.error_matches(function() ipc.wait(0) end, "out of range")
    assert.error_matches(function() ipc.wait(-5) end, "out of range")
    assert.error_matches(function() ipc.wait(2 ^ 40) end, "out of range")
    assert.error_matches(function() ipc.wait(1.5) end, "integer representation")
    assert.error_matches(function() ipc.wait(1, -1) end, "timeout must be >= 0")
    assert.error_matches(function() ipc.wait(1, 0 / 0) end, "timeout must be >= 0")
  end)

  it("rejects bad arguments to spawn and exec", function()
    assert.error_matches(function() ipc.spawn(1) end, "function expected")
    assert.error_matches(function() ipc.spawn() end, "function expected")
    assert.error_matches(function() ipc.exec("ls") end, "table expected")
    assert.error_matches(function() ipc.exec {} end, "program name expected")
    assert.error_matches(function() ipc.exec { "" } end, "empty program name")
    assert.error_matches(function() ipc.exec { "ls", bogus = 1 } end, "unknown option 'bogus'")
    assert.error_matches(function() ipc.exec { "ls", [true] = 1 } end, "option keys must be strings")
    assert.error_matches(function() ipc.exec { "ls", {} } end, "argv%[2%] must be a string")
    assert.error_matches(function() ipc.exec { "ls", "a\0b" } end, "NUL byte")
    assert.error_matches(function() ipc.exec { "true", env = { X = "a\0b" } } end, "NUL byte")
    assert.error_matches(function() ipc.exec { "ls", [5] = "x" } end, "sequence")
    assert.error_matches(function() ipc.exec { "ls", stdout = "file" } end, "option 'stdout'")
    assert.error_matches(function() ipc.exec { "ls", stdin = {} } end, "option 'stdin'")
    assert.error_matches(function() ipc.exec { "ls", stderr = -1 } end, "option 'stderr'")
    assert.error_matches(function() ipc.exec { "ls", env = "x" } end, "option 'env'")
    assert.error_matches(function() ipc.exec { "ls", env = { "x" } } end, "keys must be strings")
    assert.error_matches(function() ipc.exec { "ls", env = { A = {} } } end, "must be a string or false")
    assert.error_matches(function() ipc.exec { "ls", env = { A = true } } end, "must be a string or false")
    assert.error_matches(function() ipc.exec { "ls", env = { ["A=B"] = "x" } } end, "invalid variable name")
    assert.error_matches(function() ipc.exec { "ls", cwd = 1 } end, "option 'cwd'")
    assert.error_matches(function() ipc.exec { "ls", cwd = "" } end, "option 'cwd'")
    local r, w = ipc.pipe()
    r:close(); w:close()
    assert.error_matches(function() ipc.exec { "ls", stdout = w } end, "attempt to use a closed lipc.pipe")
    assert.same({}, ipc.children())
  end)

  it("reads exec options raw: an __index on the table never runs", function()
    -- an __index that empties argv used to crash exec (argv[0] NULL); one that
    -- returns a fresh cwd string left exec using it after a collection freed it
    local ok, _, out = helper.run_lua([[
      local ipc = require "lipc"
      local calls = 0
      local t = setmetatable({ "true" }, { __index = function(tt)
        calls = calls + 1
        rawset(tt, 1, nil)
      end })
      local p = assert(ipc.exec(t))
      assert(select(2, p:wait(10)) == 0)
      t = setmetatable({ "true" }, { __index = function(_, k)
        calls = calls + 1
        if k == "cwd" then return "/nonexistent/" .. ("x"):rep(60) end
        collectgarbage()
      end })
      p = assert(ipc.exec(t))
      assert(select(2, p:wait(10)) == 0)
      print("calls " .. calls)
    ]])
    assert.is_true(ok, out)
    assert.equal("calls 0\n", out)
  end)

  it("rejects bad arguments to process methods", function()
    local p = track(ipc.exec { "sleep", "30" })
    assert.error_matches(function() p:kill("BOGUS") end, "unknown signal name")
    assert.error_matches(function() p:kill({}) end, "string expected")
    assert.error_matches(function() p:kill(-1) end, "out of range")
    assert.error_matches(function() p:kill(1000) end, "out of range")
    assert.error_matches(function() p:wait(-1) end, "timeout must be >= 0")
    assert.error_matches(function() p:wait("x") end, "timeout in seconds")
    assert.error_matches(function() p.wait(42) end, "lipc.process expected")
    assert.is_true(p:kill())
    assert.same({ "signaled", 15 }, { p:wait(10) })
    p:close()
    assert.is_true(p:close())
    assert.equal("lipc.process(closed)", tostring(p))
    for _, f in ipairs { function() p:wait() end, function() p:kill() end, function() p:fileno() end,
                         function() p:status() end } do
      assert.error_matches(f, "attempt to use a closed lipc.process")
    end
  end)

  it("rejects bad exit codes without exiting", function()
    local ok, _, out = helper.run_lua([[
      local ipc = require "lipc"
      assert(not pcall(ipc.exit, "x"))
      assert(not pcall(ipc.exit, 256))
      assert(not pcall(ipc.exit, -1))
      print("still here")
      ipc.exit(true)
    ]])
    assert.is_true(ok, out)
    assert.equal("still here\n", out)
  end)
end)

-- Inside a task (ipc.go) a wait for a process yields to the loop; a child
-- that exits only when another task lets it shows the loop kept running.
describe("process waits inside a task", function()
  local function child_waiting_for(r, w, code)
    local pid = assert(ipc.fork())
    if pid == 0 then
      w:close()
      r:read(1)
      ipc.exit(code)
    end
    r:close()
    return pid
  end

  it("p:wait and ipc.wait yield until the child exits", function()
    if not ipc.go then pending("needs ipc.go (csrc/task.c is not in this build)") return end
    local r1, w1 = pipe()
    local pid = child_waiting_for(r1, w1, 3)
    local r2, w2 = pipe()
    local p = keep(ipc.spawn(function() r2:read(1) return 4 end))
    r2:close()
    local raw, handle
    ipc.go(function() raw = { ipc.wait(pid, 10) } end)
    ipc.go(function() handle = { p:wait(10) } end)
    ipc.go(function() assert(w1:write("x")); assert(w2:write("x")) end)
    assert(ipc.loop(20))
    assert.same({ "exited", 3 }, raw)
    assert.same({ "exited", 4 }, handle)
  end)

  it("a timed-out wait for a raw pid inside a task leaves no descriptor", function()
    if not ipc.go then pending("needs ipc.go (csrc/task.c is not in this build)") return end
    local before = helper.snapshot()
    local r, w = pipe()
    local pid = child_waiting_for(r, w, 0)
    local res
    ipc.go(function() res = { ipc.wait(pid, 0.05) } end)
    assert(ipc.loop(10))
    assert.same({ nil, "timeout", E.ETIMEDOUT }, res)
    assert(w:write("x"))
    assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
    w:close()
    assert.same({}, helper.leaks(before))
  end)
end)
