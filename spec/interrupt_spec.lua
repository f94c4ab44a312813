-- Ctrl-C reaches every blocking call, also inside a coroutine: lua5.4 arms
-- its SIGINT hook on the main thread only, so a call waiting in a coroutine
-- must notice it there and raise "interrupted!" itself (issue #8, defect 1).
local helper = require "spec.helper"

describe("Ctrl-C inside a coroutine", function()
  -- setup: Lua that makes the objects; call: the blocking call; calls: the
  -- system calls it sleeps in (for helper.ctrl_c to know it got there)
  local cases = {
    { "pipe read", "local r, w = ipc.pipe()", "r:read(1, %s)" },
    { "pipe read line", "local r, w = ipc.pipe()", "r:read('l', %s)" },
    { "eventfd take", "local e = ipc.eventfd(0)", "e:take(%s)" },
    { "semaphore wait", "local reg = ipc.shm.anonymous(4096)\nlocal s = ipc.sem.new(reg, 0, 0)", "s:wait(%s)",
      { "futex" } },
    { "POSIX queue receive", "local q = ipc.mq.open()", "q:receive(%s)", { "mq_timedreceive", "futex" } },
    { "System V queue receive", "local q = ipc.msg.get()", "q:receive(0, %s)",
      { "msgrcv", "clock_nanosleep" } },
    { "socket recv", "local a, b = ipc.socketpair()", "a:recv(10, %s)" },
    { "accept", "local l = ipc.listen('unix:')", "l:accept(%s)" },
    { "poll", "local e = ipc.eventfd(0)", "ipc.poll({ e }, %s)" },
    { "signal watch", "local sw = ipc.signal.watch { 'USR1' }", "sw:next(%s)" },
    { "process wait", "local p = ipc.exec { 'sleep', '30', stdout = 'null', stderr = 'null' }", "p:wait(%s)" },
  }
  for _, c in ipairs(cases) do
    local name, setup, call, calls = c[1], c[2], c[3], c[4]
    for _, timeout in ipairs { "nil", "20" } do
      it(("interrupts %s (timeout %s)"):format(name, timeout), function()
        local code = setup .. "\nio.stdout:write('ready\\n'); io.stdout:flush()\n" ..
          "local co = coroutine.wrap(function() return " .. call:format(timeout) .. " end)\n" ..
          "co()\nprint('not reached')\n"
        local calls_ = calls and { table.unpack(calls) } or { "read", "poll", "ppoll", "epoll_wait", "recvfrom" }
        for _, x in ipairs { "ppoll", "poll", "read", "recvfrom", "futex" } do calls_[#calls_ + 1] = x end
        local ok, out, status = helper.ctrl_c(code, { ready = "ready", calls = calls_ })
        assert.is_false(ok)
        assert.equal(1, status, out)
        -- raised out of the coroutine: helper.ctrl_c kills a process that
        -- ignored the SIGINT for 10 s (status 137), so this is prompt
        assert.matches("interrupted!", out)
        assert.is_nil(out:find("not reached", 1, true), out)
      end)
    end
  end

  it("a Ctrl-C that came while the coroutine computed stops its next blocking call", function()
    local ok, out, status = helper.ctrl_c([[
      local r, w = ipc.pipe()
      local co = coroutine.wrap(function()
        local t = ipc.clock()
        io.stdout:write("ready\n"); io.stdout:flush()
        local e = ipc.eventfd(0)
        -- sleep in the kernel until the SIGINT arrives (it is ignored by the
        -- wait: this pcall swallows the interrupt of the first call)
        print("first:", pcall(e.take, e, 20))
        local ok2, err2 = pcall(r.read, r, 1, 20)
        print("second:", ok2, err2, ipc.clock() - t < 10)
      end)
      co()
      print("not reached")
    ]], { ready = "ready" })
    assert.is_false(ok)
    assert.equal(1, status, out)
    assert.matches("first:\tfalse\t[^\n]*interrupted!", out)
    assert.matches("second:\tfalse\t[^\n]*interrupted!\ttrue", out)
    assert.is_nil(out:find("not reached", 1, true), out)
  end)
end)
