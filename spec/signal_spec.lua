local ipc = require "lipc"
local helper = require "spec.helper"

local ETIMEDOUT, ESRCH = 110, 3

--- A field of /proc/self/status ("SigBlk", "SigIgn") as an integer bit mask.
local function status_mask(field)
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("a")
  f:close()
  return assert(math.tointeger(tonumber(text:match(field .. ":%s*(%x+)"), 16)))
end

--- The bit of signal s in a /proc mask.
local function bit(s)
  return 1 << (s - 1)
end

--- Run the shell's kill program against pid (through ipc.exec when it exists).
local function shell_kill(sig, pid)
  if ipc.exec then
    local p = assert(ipc.exec { "kill", "-" .. sig, tostring(pid) })
    local how, code = p:wait(10)
    return how == "exited" and code == 0
  end
  return os.execute(("kill -%s %d"):format(sig, pid)) == true
end

describe("ipc.signal", function()
  describe("watch", function()
    it("Ctrl-C interrupts a blocked next", function()
      local ok, out = helper.ctrl_c("local w = ipc.signal.watch { 'USR1' }\nw:next()\nprint('not reached')")
      assert.is_falsy(ok)
      assert.matches("interrupted!", out)
      assert.is_nil(out:find("not reached"))
    end)

    it("receives a USR1 sent by the kill program while waiting in next", function()
      local w <close> = ipc.signal.watch { "USR1" }
      local go <close> = ipc.eventfd(0)
      local parent = ipc.getpid()
      local pid = helper.fork(function()
        assert(go:take(10))
        assert(shell_kill("USR1", parent))
      end)
      assert(go:add(1))
      local name, info = w:next(10)
      assert.equal("USR1", name)
      assert.equal(ipc.signal.SIGUSR1, info.signo)
      assert.is_number(info.pid)
      assert.is_true(info.pid ~= parent)   -- sent by the kill program (or its shell)
      helper.reap(pid)
    end)

    it("delivers a sigqueue payload with the sender's pid and uid", function()
      local w <close> = ipc.signal.watch { "RTMIN+1" }
      local pid = helper.fork(function()
        assert(ipc.signal.queue(ipc.getppid(), "RTMIN+1", 42))
      end)
      local name, info = w:next(10)
      assert.equal("RTMIN+1", name)
      assert.equal(42, info.value)
      assert.equal(pid, info.pid)
      assert.equal(ipc.signal.SIGRTMIN + 1, info.signo)
      assert.equal(-1, info.code)   -- SI_QUEUE
      local uid = tonumber((helper.sh("id -u")))
      assert.equal(uid, info.uid)
      helper.reap(pid)
    end)

    it("queues real-time signals in order with their values", function()
      local w <close> = ipc.signal.watch { "RTMIN+2" }
      local me = ipc.getpid()
      for v = 1, 5 do assert(ipc.signal.queue(me, "RTMIN+2", v * 1000)) end
      for v = 1, 5 do
        local _, info = w:next(5)
        assert.equal(v * 1000, info.value)
        assert.equal(me, info.pid)
      end
      assert.is_nil((w:next(0)))
    end)

    it("carries the full int range as payload", function()
      local w <close> = ipc.signal.watch { "RTMIN" }
      local me = ipc.getpid()
      assert(ipc.signal.queue(me, "RTMIN", -2147483648))
      assert(ipc.signal.queue(me, "RTMIN", 2147483647))
      assert.equal(-2147483648, select(2, w:next(5)).value)
      assert.equal(2147483647, select(2, w:next(5)).value)
    end)

    it("answers with the caller's spelling of each signal", function()
      local w <close> = ipc.signal.watch { "SIGUSR2", "rtmax-1", "RTMIN+3", ipc.signal.SIGUSR1 }
      local me = ipc.getpid()
      assert(ipc.signal.kill(me, "USR2"))
      assert.equal("SIGUSR2", (w:next(5)))
      assert(ipc.signal.queue(me, ipc.signal.SIGRTMAX - 1, 7))
      assert.equal("rtmax-1", (w:next(5)))
      assert(ipc.signal.kill(me, ipc.signal.SIGRTMIN + 3))
      assert.equal("RTMIN+3", (w:next(5)))
      assert(ipc.signal.kill(me, "SIGUSR1"))
      assert.equal("USR1", (w:next(5)))   -- a number is answered with the canonical name
      assert.same({ "USR1", "SIGUSR2", "RTMIN+3", "rtmax-1" }, w:signals())
    end)

    it("times out with nothing pending", function()
      local w <close> = ipc.signal.watch { "USR2" }
      local v, msg, err = w:next(0)
      assert.is_nil(v)
      assert.equal("timeout", msg)
      assert.equal(ETIMEDOUT, err)
      local t0 = os.time()
      v, msg = w:next(0.2)
      assert.is_nil(v)
      assert.equal("timeout", msg)
      assert.is_true(os.time() - t0 <= 2)
    end)

    it("blocks the signals, and close restores the mask (SigBlk)", function()
      local usr1, usr2 = ipc.signal.SIGUSR1, ipc.signal.SIGUSR2
      local before = status_mask("SigBlk")
      assert.equal(0, before & (bit(usr1) | bit(usr2)))
      local w1 = ipc.signal.watch { "USR1" }
      local w2 = ipc.signal.watch { "USR1", "USR2" }
      assert.equal(bit(usr1) | bit(usr2), status_mask("SigBlk") & (bit(usr1) | bit(usr2)))
      local blocked = table.concat(ipc.signal.blocked(), " ")
      assert.matches("USR1", blocked)
      w1:close()   -- w2 still needs USR1
      assert.equal(bit(usr1) | bit(usr2), status_mask("SigBlk") & (bit(usr1) | bit(usr2)))
      w2:close()
      assert.equal(before, status_mask("SigBlk"))
    end)

    it("works in an ipc.spawn child, whose mask starts empty, and restores it", function()
      if not ipc.spawn then
        pending("ipc.spawn is not in this build")
        return
      end
      local term = bit(ipc.signal.SIGTERM)
      local w <close> = ipc.signal.watch { "TERM" }
      assert.same({ "TERM" }, w:signals())
      assert.equal(term, status_mask("SigBlk") & term)
      local proc = assert(ipc.spawn(function()
        assert(status_mask("SigBlk") & term == 0, "spawned child inherited the mask")
        local w2 = assert(ipc.signal.watch { "TERM" })
        assert(status_mask("SigBlk") & term == term)
        assert(ipc.signal.kill(ipc.getpid(), "TERM"))
        assert(w2:next(5) == "TERM")
        w2:close()
        assert(status_mask("SigBlk") & term == 0, "child's watch left TERM blocked")
        return 0
      end))
      local how, code = proc:wait(10)
      assert.equal("exited", how)
      assert.equal(0, code)
      if proc.close then proc:close() end
      assert.equal(term, status_mask("SigBlk") & term)   -- the parent's watch is untouched
    end)

    it("keeps a watched TERM from killing the process", function()
      local ok, code, out = helper.run_lua([[
        local ipc = require "lipc"
        local w <close> = ipc.signal.watch { "TERM" }
        assert(ipc.signal.kill(ipc.getpid(), "TERM"))
        local name = assert(w:next(5))
        print("alive after " .. name)
      ]])
      assert.is_true(ok, out)
      assert.equal(0, code)
      assert.matches("alive after TERM", out)
    end)

    it("discards pending instances of the signals it unblocks on close", function()
      local ok, _, out = helper.run_lua([[
        local ipc = require "lipc"
        local w = ipc.signal.watch { "TERM" }
        assert(ipc.signal.kill(ipc.getpid(), "TERM"))
        w:close()
        print("survived close")
      ]])
      assert.is_true(ok, out)
      assert.matches("survived close", out)
    end)

    it("lets an unwatched default signal kill as usual", function()
      local pid = helper.fork(function()
        local w <close> = ipc.signal.watch { "USR1" }
        assert(w and ipc.signal.kill(ipc.getpid(), "USR2"))   -- not watched: default action
        return false
      end)
      local how, sig = ipc.wait(pid, 10)
      assert.equal("signaled", how)
      assert.equal(ipc.signal.SIGUSR2, sig)
    end)

    it("is a descriptor for ipc.poll", function()
      local w <close> = ipc.signal.watch { "USR2" }
      assert.same({}, ipc.poll({ w }, 0))
      assert(ipc.signal.kill(ipc.getpid(), "USR2"))
      local ready = ipc.poll({ w }, 5)
      assert.equal(w, ready[1])
      assert.equal("USR2", (w:next(0)))
      assert.matches("lipc.sigwatch%(fd=%d+, USR2%)", tostring(w))
    end)

    it("with nonblock = true, next without a timeout tries once", function()
      local w <close> = ipc.signal.watch({ "USR2" }, { nonblock = true })
      local v, msg = w:next()
      assert.is_nil(v)
      assert.equal("timeout", msg)
    end)

    it("does not pass its mask to programs started with ipc.exec", function()
      if not ipc.exec then
        pending("ipc.exec is not in this build")
        return
      end
      local w <close> = ipc.signal.watch { "USR1", "TERM" }
      assert.equal(2, #w:signals())
      local p = assert(ipc.exec { "grep", "SigBlk", "/proc/self/status", stdout = "pipe" })
      local out = p.stdout:read("a", 10)
      p.stdout:close()
      assert.equal("exited", (p:wait(10)))
      assert.matches("SigBlk:%s*0+\n", out)
    end)
  end)

  describe("kill and queue", function()
    it("signal 0 checks that a process exists", function()
      assert.is_true(ipc.signal.kill(ipc.getpid(), 0))
      local pid = helper.fork(function() end)
      helper.reap(pid)
      local v, msg, err = ipc.signal.kill(pid, 0)
      assert.is_nil(v)
      assert.matches("kill " .. pid .. ": No such process", msg)
      assert.equal(ESRCH, err)
      v, msg, err = ipc.signal.queue(pid, "USR1", 1)
      assert.is_nil(v)
      assert.matches("sigqueue", msg)
      assert.equal(ESRCH, err)
    end)

    it("kills a child by name, by SIG-name and by number", function()
      for _, sig in ipairs { "TERM", "SIGHUP", 9 } do
        local ready <close> = ipc.eventfd(0)
        local never <close> = ipc.eventfd(0)
        local pid = helper.fork(function()
          ready:add(1)
          never:take(30)   -- waits to be killed
        end)
        assert(ready:take(10))
        assert.is_true(ipc.signal.kill(pid, sig))
        local how, signo = ipc.wait(pid, 10)
        assert.equal("signaled", how)
        assert.equal(ipc.signal.number(sig), signo)
      end
    end)
  end)

  describe("ignore and default", function()
    it("round trips a disposition (SigIgn) and restores the default", function()
      local usr2 = ipc.signal.SIGUSR2
      finally(function() ipc.signal.default("USR2") end)
      assert.equal("default", ipc.signal.disposition("USR2"))
      assert.is_true(ipc.signal.ignore("USR2"))
      assert.equal("ignore", ipc.signal.disposition("USR2"))
      assert.equal(bit(usr2), status_mask("SigIgn") & bit(usr2))
      assert(ipc.signal.kill(ipc.getpid(), "USR2"))   -- ignored: we live on
      assert.is_true(ipc.signal.default("USR2"))
      assert.equal("default", ipc.signal.disposition("USR2"))
      assert.equal(0, status_mask("SigIgn") & bit(usr2))
    end)

    it("an ignored signal is ignored in a forked child too", function()
      finally(function() ipc.signal.default("USR1") end)
      ipc.signal.ignore("USR1")
      local pid = helper.fork(function()
        assert(ipc.signal.kill(ipc.getpid(), "USR1"))
      end)
      ipc.signal.default("USR1")
      helper.reap(pid)
    end)
  end)

  describe("names and numbers", function()
    it("exports the signal numbers", function()
      assert.equal(15, ipc.signal.SIGTERM)
      assert.equal(9, ipc.signal.SIGKILL)
      assert.equal(10, ipc.signal.SIGUSR1)
      assert.equal(17, ipc.signal.SIGCHLD)
      assert.is_true(ipc.signal.SIGRTMIN >= 32 and ipc.signal.SIGRTMIN < ipc.signal.SIGRTMAX)
      assert.equal(64, ipc.signal.SIGRTMAX)
    end)

    it("names numbers and numbers names", function()
      assert.equal("TERM", ipc.signal.name(15))
      assert.equal("USR1", ipc.signal.name(ipc.signal.SIGUSR1))
      assert.equal("RTMIN", ipc.signal.name(ipc.signal.SIGRTMIN))
      assert.equal("RTMIN+2", ipc.signal.name(ipc.signal.SIGRTMIN + 2))
      assert.equal("RTMAX", ipc.signal.name(ipc.signal.SIGRTMAX))
      assert.equal(15, ipc.signal.number("TERM"))
      assert.equal(15, ipc.signal.number("SIGTERM"))
      assert.equal(ipc.signal.SIGRTMAX - 1, ipc.signal.number("RTMAX-1"))
    end)
  end)

  describe("bad input", function()
    it("watch rejects bad lists, names and numbers", function()
      assert.has_error(function() ipc.signal.watch("USR1") end)
      assert.has_error(function() ipc.signal.watch() end)
      assert.has_error(function() ipc.signal.watch {} end,
        "bad argument #1 to 'signal.watch' (at least one signal expected)")
      assert.has_error(function() ipc.signal.watch { "FOO" } end)
      assert.has_error(function() ipc.signal.watch { "RTMIN+99" } end)
      assert.has_error(function() ipc.signal.watch { "RTMAX+1" } end)
      assert.has_error(function() ipc.signal.watch { "" } end)
      assert.has_error(function() ipc.signal.watch { "USR1\0" } end)
      assert.has_error(function() ipc.signal.watch { 0 } end)
      assert.has_error(function() ipc.signal.watch { 65 } end)
      assert.has_error(function() ipc.signal.watch { -1 } end)
      assert.has_error(function() ipc.signal.watch { 32 } end)
      assert.has_error(function() ipc.signal.watch { 1.5 } end)
      assert.has_error(function() ipc.signal.watch { true } end)
      assert.has_error(function() ipc.signal.watch { {} } end)
      assert.has_error(function() ipc.signal.watch { "USR1", "KILL" } end,
        "bad argument #1 to 'signal.watch' (item 2: KILL cannot be watched)")
      assert.has_error(function() ipc.signal.watch { "STOP" } end)
      assert.has_error(function() ipc.signal.watch({ "USR1" }, { bogus = 1 }) end)
      assert.has_error(function() ipc.signal.watch({ "USR1" }, 5) end)
      assert.equal(0, status_mask("SigBlk") & bit(ipc.signal.SIGUSR1))   -- failures block nothing
    end)

    it("next and fileno reject bad timeouts and closed watches", function()
      local w = ipc.signal.watch { "USR2" }
      assert.has_error(function() w:next(-1) end)
      assert.has_error(function() w:next("x") end)
      assert.has_error(function() w:next(0 / 0) end)
      assert.is_true(w:close())
      assert.is_true(w:close())
      assert.has_error(function() w:next(0) end, "attempt to use a closed lipc.sigwatch")
      assert.has_error(function() w:fileno() end, "attempt to use a closed lipc.sigwatch")
      assert.has_error(function() w:signals() end, "attempt to use a closed lipc.sigwatch")
      assert.has_error(function() w.next(ipc.eventfd(0)) end)
    end)

    it("kill and queue reject bad pids, signals and values", function()
      local me = ipc.getpid()
      assert.has_error(function() ipc.signal.kill("x", "TERM") end)
      assert.has_error(function() ipc.signal.kill(nil, "TERM") end)
      assert.has_error(function() ipc.signal.kill(2 ^ 40, "TERM") end)
      assert.has_error(function() ipc.signal.kill(1.5, "TERM") end)
      assert.has_error(function() ipc.signal.kill(me, "FOO") end)
      assert.has_error(function() ipc.signal.kill(me, 65) end)
      assert.has_error(function() ipc.signal.kill(me, -1) end)
      assert.has_error(function() ipc.signal.kill(me, {}) end)
      assert.has_error(function() ipc.signal.queue(0, "USR1", 1) end)
      assert.has_error(function() ipc.signal.queue(-5, "USR1", 1) end)
      assert.has_error(function() ipc.signal.queue(me, "FOO", 1) end)
      assert.has_error(function() ipc.signal.queue(me, "USR1", 2 ^ 31) end)
      assert.has_error(function() ipc.signal.queue(me, "USR1", -2 ^ 31 - 1) end)
      assert.has_error(function() ipc.signal.queue(me, "USR1", "x") end)
      assert.has_error(function() ipc.signal.queue(me, "USR1", 0.5) end)
      assert.has_error(function() ipc.signal.queue(me) end)
    end)

    it("ignore, default, disposition and name reject bad signals", function()
      for _, f in ipairs { ipc.signal.ignore, ipc.signal.default } do
        assert.has_error(function() f("KILL") end)
        assert.has_error(function() f("STOP") end)
        assert.has_error(function() f(0) end)
        assert.has_error(function() f(65) end)
        assert.has_error(function() f(-1) end)
        assert.has_error(function() f(33) end)
        assert.has_error(function() f("FOO") end)
        assert.has_error(function() f() end)
        assert.has_error(function() f({}) end)
      end
      assert.has_error(function() ipc.signal.disposition(0) end)
      assert.has_error(function() ipc.signal.disposition("FOO") end)
      assert.has_error(function() ipc.signal.name(0) end)
      assert.has_error(function() ipc.signal.name(65) end)
      assert.has_error(function() ipc.signal.name(-1) end)
      assert.has_error(function() ipc.signal.name("TERM") end)
      assert.has_error(function() ipc.signal.number("FOO") end)
      assert.equal("default", ipc.signal.disposition("KILL"))
    end)
  end)
end)

-- Inside a task (ipc.go) next waits by yielding to the loop.
describe("ipc.signal inside a task", function()
  it("next yields until another task sends the signal", function()
    if not ipc.go then pending("needs ipc.go (csrc/task.c is not in this build)") return end
    local w <close> = ipc.signal.watch { "USR2" }
    local name, info
    ipc.go(function() name, info = w:next(10) end)
    ipc.go(function() assert(ipc.signal.kill(ipc.getpid(), "USR2")) end)
    assert(ipc.loop(20))
    assert.equal("USR2", name)
    assert.equal(ipc.signal.SIGUSR2, info.signo)
  end)
end)
