local ipc = require "lipc"
local helper = require "spec.helper"

local ENOENT, EEXIST, EBADF, EINVAL = 2, 17, 9, 22

--- Seconds of wall-clock time taken by fn.
local function timed(fn)
  local t0 = ipc.clock()
  fn()
  return ipc.clock() - t0
end

--- The (obj, ev) pairs of one p:wait as a list of {obj, ev}.
local function collect(p, timeout)
  local got = {}
  for obj, ev in p:wait(timeout) do got[#got + 1] = { obj, ev } end
  return got
end

describe("ipc.poll", function()
  it("Ctrl-C interrupts a blocked poll and a blocked poller wait", function()
    for _, code in ipairs {
      "local e = ipc.eventfd(0)\nipc.poll({ e })\nprint('not reached')",
      "local e = ipc.eventfd(0)\nlocal p = ipc.poller()\np:add(e)\nfor _ in p:wait() do end\nprint('not reached')",
    } do
      local ok, out = helper.ctrl_c(code)
      assert.is_falsy(ok)
      assert.matches("interrupted!", out)
      assert.is_nil(out:find("not reached"))
    end
  end)

  it("returns just the readable eventfd out of several", function()
    local a <close> = ipc.eventfd(0)
    local b <close> = ipc.eventfd(0)
    local c <close> = ipc.eventfd(0)
    local pid = helper.fork(function() assert(b:add(1)) end)
    local ready = ipc.poll({ a, b, c }, 10)
    assert.equal(1, #ready)
    assert.equal(b, ready[1])
    helper.reap(pid)
  end)

  it("returns several in list order, and plain descriptors as given", function()
    local a <close> = ipc.eventfd(1)
    local b <close> = ipc.eventfd(0)
    local c <close> = ipc.eventfd(1)
    local ready = ipc.poll({ c:fileno(), b, a }, 0)
    assert.same({ c:fileno(), a }, ready)
  end)

  it("returns {} promptly on timeout", function()
    local a <close> = ipc.eventfd(0)
    local ready
    local secs = timed(function() ready = ipc.poll({ a }, 0.2) end)
    assert.same({}, ready)
    assert.is_true(secs >= 0.18 and secs <= 2, "took " .. secs)
    assert.same({}, ipc.poll({ a }, 0))
    assert.same({}, ipc.poll({}, 0))
  end)

  it("sees a pending signal on a watch", function()
    local w <close> = ipc.signal.watch { "USR1" }
    local e <close> = ipc.eventfd(0)
    local pid = helper.fork(function() assert(ipc.signal.kill(ipc.getppid(), "USR1")) end)
    local ready = ipc.poll({ e, w }, 10)
    assert.same({ w }, ready)
    assert.equal("USR1", (w:next(0)))
    helper.reap(pid)
  end)

  describe("with pipes", function()
    it("returns the one readable pipe, then end of stream as readable", function()
      if not ipc.pipe then
        pending("ipc.pipe is not in this build")
        return
      end
      local r1, w1 = ipc.pipe()
      local r2, w2 = ipc.pipe()
      local r3, w3 = ipc.pipe()
      finally(function()
        for _, x in ipairs { r1, w1, r2, w2, r3, w3 } do x:close() end
      end)
      local pid = helper.fork(function()
        assert(w2:write("hello"))
      end)
      assert.same({ r2 }, ipc.poll({ r1, r2, r3 }, 10))
      assert.equal("hello", r2:read(5, 5))
      helper.reap(pid)
      w3:close()
      assert.same({ r3 }, ipc.poll({ r1, r2, r3 }, 10))   -- EOF counts as readable
      assert.is_nil(r3:read(1, 0))
    end)
  end)
end)

describe("ipc.poll on objects without a descriptor", function()
  -- A child that waits for "go" on a pipe, then runs act: the parent is
  -- already inside ipc.poll (or about to be: readiness is level-triggered).
  local function after_go(act)
    local r, w = ipc.pipe()
    local pid = helper.fork(function() w:close(); assert(r:read(1, 30) == "g"); act() end)
    r:close()
    return pid, w
  end

  it("wakes for a ring message, and for a socket beside it", function()
    local ring <close> = assert(ipc.ring.create(4096))
    local a, b = ipc.socketpair("stream")
    local _ <close> = a
    local _ <close> = b
    assert.same({}, ipc.poll({ ring, a }, 0))
    local pid, go = after_go(function() assert(ring:send("hi")) end)
    assert(go:write("g"))
    assert.same({ ring }, ipc.poll({ a, ring }, 10))
    helper.reap(pid)
    assert.same({ ring }, ipc.poll({ a, ring }, 0))   -- level-triggered: still there
    assert.equal("hi", ring:recv(1))
    assert.same({}, ipc.poll({ ring, a }, 0))
    pid, go = after_go(function() assert(b:write("x")) end)
    assert(go:write("g"))
    assert.same({ a }, ipc.poll({ ring, a }, 10))
    helper.reap(pid)
    go:close()
  end)

  it("wakes for a semaphore post, and for a pipe beside it", function()
    local region <close> = assert(ipc.shm.anonymous(4096))
    local sem <close> = assert(ipc.sem.new(region, 0, 0))
    local pr, pw = ipc.pipe()
    local _ <close> = pr
    local _ <close> = pw
    assert.same({}, ipc.poll({ sem, pr }, 0))
    local pid, go = after_go(function() assert(sem:post()) end)
    assert(go:write("g"))
    assert.same({ sem }, ipc.poll({ pr, sem }, 10))
    helper.reap(pid)
    assert.is_true(sem:trywait())
    assert.same({}, ipc.poll({ sem, pr }, 0))
    pid, go = after_go(function() assert(pw:write("x")) end)
    assert(go:write("g"))
    assert.same({ pr }, ipc.poll({ sem, pr }, 10))
    helper.reap(pid)
    go:close()
  end)

  it("wakes for a System V queue message", function()
    local q = assert(ipc.msg.get(ipc.IPC_PRIVATE, { create = true, mode = "600" }))
    assert.same({}, ipc.poll({ q }, 0))
    local pid, go = after_go(function() assert(q:send(7, "m")) end)
    assert(go:write("g"))
    assert.same({ q }, ipc.poll({ q }, 10))
    helper.reap(pid)
    assert.equal("m", (q:receive(0, 1)))
    assert.same({}, ipc.poll({ q }, 0))
    go:close()
    q:remove()
    q:close()
  end)

  it("says a mutex is ready when its holder unlocks it", function()
    local region <close> = assert(ipc.shm.anonymous(4096))
    local mu <close> = assert(ipc.mutex.new(region, 0))
    assert.same({ mu }, ipc.poll({ mu }, 0))
    -- a child takes the lock, says so, and unlocks on "u"
    local r1, w1 = ipc.pipe()
    local r2, w2 = ipc.pipe()
    local pid = helper.fork(function()
      w1:close(); r2:close()
      assert(mu:lock(10))
      assert(w2:write("L"))
      assert(r1:read(1, 30) == "u")
      assert(mu:unlock())
    end)
    r1:close(); w2:close()
    assert.equal("L", r2:read(1, 30))
    assert.same({}, ipc.poll({ mu }, 0.05))
    assert(w1:write("u"))
    assert.same({ mu }, ipc.poll({ mu }, 10))
    helper.reap(pid)
    w1:close(); r2:close()
  end)

  it("returns {} at the deadline when nothing is ready", function()
    local region <close> = assert(ipc.shm.anonymous(4096))
    local sem <close> = assert(ipc.sem.new(region, 0, 0))
    local ring <close> = assert(ipc.ring.create(4096))
    local e <close> = ipc.eventfd(0)
    local ready
    local secs = timed(function() ready = ipc.poll({ sem, ring, e }, 0.2) end)
    assert.same({}, ready)
    assert.is_true(secs >= 0.18 and secs <= 2, "took " .. secs)
    secs = timed(function() ready = ipc.poll({ sem }, 0.2) end)
    assert.same({}, ready)
    assert.is_true(secs >= 0.18 and secs <= 2, "took " .. secs)
  end)

  it("yields inside a task while another task ticks", function()
    local region <close> = assert(ipc.shm.anonymous(4096))
    local sem <close> = assert(ipc.sem.new(region, 0, 0))
    local ring <close> = assert(ipc.ring.create(4096))
    local ticks, got, at = 0, nil, nil
    local t1 = ipc.go(function() got = ipc.poll({ ring, sem }, 10); at = ticks end)
    local t2 = ipc.go(function()
      for _ = 1, 5 do ipc.sleep(0.01); ticks = ticks + 1 end
      sem:post()
    end)
    local t3 = ipc.go(function() return ipc.poll({ ring, sem }, 0.05) end)
    assert.is_true(ipc.loop(30))
    assert.same({ sem }, got)
    assert.equal(5, at)
    assert.same({}, select(2, t3:join()))
    assert.equal("done", t1:status())
    assert.equal("done", t2:status())
  end)

  it("counts a channel's buffered value as ready", function()
    local a, b = ipc.channel.pair()
    local _ <close> = a
    local _ <close> = b
    assert.same({}, ipc.poll({ a }, 0))
    assert(b:send(1)); assert(b:send(2))
    assert.same({ a }, ipc.poll({ a }, 10))
    assert.equal(1, a:recv(1))
    assert.is_true(a:buffered())
    assert.same({ a }, ipc.poll({ a }, 0))   -- nothing left on the socket, one value in the buffer
    assert.equal(2, a:recv(1))
    assert.same({}, ipc.poll({ a }, 0))
    local ring <close> = assert(ipc.ring.create(4096))
    local rc <close> = ipc.channel(ring, ring, { own = false })
    assert.same({}, ipc.poll({ rc, b }, 0))
    assert(rc:send({ x = 1 }))
    assert.same({ rc }, ipc.poll({ b, rc }, 10))
  end)

  it("Ctrl-C interrupts a poll on a semaphore", function()
    local ok, out = helper.ctrl_c(
      "local r = ipc.shm.anonymous(4096)\nlocal s = ipc.sem.new(r, 0, 0)\nipc.poll({ s })\nprint('not reached')")
    assert.is_falsy(ok)
    assert.matches("interrupted!", out)
    assert.is_nil(out:find("not reached"))
  end)

  it("rejects objects that have no readiness", function()
    local region <close> = assert(ipc.shm.anonymous(4096))
    local cv <close> = assert(ipc.cond.new(region, 0))
    local set = assert(ipc.semset.get(ipc.IPC_PRIVATE, 1, { create = true }))
    assert.has_error(function() ipc.poll({ cv }) end,
      "bad argument #1 to 'poll' (item 1: lipc.cond cannot be polled (no descriptor, no readiness))")
    assert.has_error(function() ipc.poll({ set }, 0) end,
      "bad argument #1 to 'poll' (item 1: lipc.semset cannot be polled (no descriptor, no readiness))")
    assert.has_error(function() ipc.poll({ region }, 0) end)
    set:remove()
    set:close()
  end)
end)

describe("ipc.poller", function()
  it("registers objects and returns the same objects from wait", function()
    local p <close> = ipc.poller()
    local a <close> = ipc.eventfd(0)
    local b <close> = ipc.eventfd(0)
    assert.is_true(p:add(a, "r"))
    assert.is_true(p:add(b))   -- "r" by default
    assert.equal(2, #p)
    assert.equal(2, p:count())
    assert(b:add(3))
    local got = collect(p, 5)
    assert.equal(1, #got)
    assert.is_true(rawequal(b, got[1][1]))
    assert.equal("r", got[1][2])
    assert.equal(3, b:take(0))
    assert.same({}, collect(p, 0))
  end)

  it("reports w, rw after modify, and nothing after remove", function()
    local p <close> = ipc.poller()
    local a <close> = ipc.eventfd(0)
    assert(p:add(a, "w"))
    assert.same({ { a, "w" } }, collect(p, 1))   -- an eventfd is writable below its maximum
    assert(a:add(1))
    assert(p:modify(a, "rw"))
    assert.same({ { a, "rw" } }, collect(p, 1))
    assert(p:modify(a, "r"))
    assert.same({ { a, "r" } }, collect(p, 1))
    assert.is_true(p:remove(a))
    assert.equal(0, #p)
    assert.same({}, collect(p, 0))
  end)

  it("yields nothing on timeout, after about the timeout", function()
    local p <close> = ipc.poller()
    local a <close> = ipc.eventfd(0)
    assert(p:add(a))
    local got
    local secs = timed(function() got = collect(p, 0.2) end)
    assert.same({}, got)
    assert.is_true(secs >= 0.18 and secs <= 2, "took " .. secs)
  end)

  it("works with signal watches and plain descriptors", function()
    local p <close> = ipc.poller()
    local w <close> = ipc.signal.watch { "USR2" }
    local e <close> = ipc.eventfd(1)
    assert(p:add(w))
    assert(p:add(e:fileno(), "r"))
    assert(ipc.signal.kill(ipc.getpid(), "USR2"))
    local seen = {}
    for obj, ev in p:wait(5) do seen[obj] = ev end
    assert.equal("r", seen[w])
    assert.equal("r", seen[e:fileno()])
    assert.equal("USR2", (w:next(0)))
    assert(p:remove(e:fileno()))
  end)

  it("serves 50 clients (eventfds written by 50 children)", function()
    local n = 50
    local p <close> = ipc.poller()
    local fds, want, got, pids = {}, {}, {}, {}
    finally(function() for _, e in ipairs(fds) do e:close() end end)
    for i = 1, n do
      fds[i] = ipc.eventfd(0)
      assert(p:add(fds[i], "r"))
      want[fds[i]], got[fds[i]] = 3 * i, 0
    end
    for i = 1, n do
      pids[i] = helper.fork(function()
        for _ = 1, 3 do assert(fds[i]:add(i)) end
      end)
    end
    local remaining = n
    while remaining > 0 do
      local any = false
      for e, ev in p:wait(10) do
        any = true
        assert.equal("r", ev)
        got[e] = got[e] + assert(e:take(0))
        if got[e] == want[e] then
          assert(p:remove(e))
          remaining = remaining - 1
        end
      end
      assert.is_true(any, "poller timed out with " .. remaining .. " clients left")
    end
    assert.equal(0, #p)
    for _, pid in ipairs(pids) do helper.reap(pid) end
  end)

  it("serves 50 pipe clients to end of stream", function()
    if not ipc.pipe then
      pending("ipc.pipe is not in this build")
      return
    end
    local n = 50
    local p <close> = ipc.poller()
    local readers, pids, data = {}, {}, {}
    finally(function() for _, r in ipairs(readers) do r:close() end end)
    for i = 1, n do
      local r, w = ipc.pipe()
      readers[i] = r
      data[r] = ""
      pids[i] = helper.fork(function()
        r:close()
        for k = 1, 3 do assert(w:write(("client %d line %d\n"):format(i, k))) end
        w:close()
      end)
      w:close()
      assert(p:add(r, "r"))
    end
    local open = n
    while open > 0 do
      local any = false
      for r, ev in p:wait(10) do
        any = true
        assert.is_true(ev == "r" or ev == "hup")
        local chunk = r:read(4096, 0)
        if chunk then
          data[r] = data[r] .. chunk
        else
          assert(p:remove(r))
          open = open - 1
        end
      end
      assert.is_true(any, "poller timed out with " .. open .. " pipes open")
    end
    for i = 1, n do
      assert.equal(("client %d line 1\nclient %d line 2\nclient %d line 3\n"):format(i, i, i), data[readers[i]])
      helper.reap(pids[i])
    end
  end)

  it("reports hup for a pipe whose writer closed", function()
    if not ipc.pipe then
      pending("ipc.pipe is not in this build")
      return
    end
    local r <close>, w = ipc.pipe()
    local p <close> = ipc.poller()
    assert(p:add(r, "r"))
    w:close()
    assert.same({ { r, "hup" } }, collect(p, 5))
  end)

  it("wakes up when a process handle's child exits (pidfd)", function()
    if not ipc.spawn then
      pending("ipc.spawn (process handles) is not in this build")
      return
    end
    local go <close> = ipc.eventfd(0)
    local proc = assert(ipc.spawn(function() assert(go:take(10)) return 7 end))
    local ok = pcall(proc.fileno, proc)
    if not ok then
      proc:kill("KILL")
      proc:wait(10)
      pending("process handles have no descriptor in this build")
      return
    end
    local p <close> = ipc.poller()
    assert(p:add(proc, "r"))
    assert.same({}, collect(p, 0))   -- still running
    assert(go:add(1))
    local got = collect(p, 10)
    assert.equal(1, #got)
    assert.is_true(rawequal(proc, got[1][1]))
    local how, code = proc:wait(10)
    assert.equal("exited", how)
    assert.equal(7, code)
    assert(p:remove(proc))
    if proc.close then proc:close() end
  end)

  it("skips an object closed while registered, and reuses its number", function()
    local p <close> = ipc.poller()
    local a = ipc.eventfd(1)
    local b <close> = ipc.eventfd(0)
    assert(p:add(a))
    assert(p:add(b))
    local fd = a:fileno()
    a:close()
    assert.same({}, collect(p, 0))      -- a was readable, but is closed
    assert.equal(1, #p)
    assert.is_true(p:remove(a))         -- a closed object: never a hard failure
    local c <close> = ipc.eventfd(1)    -- most likely reuses a's number
    assert(p:add(c))
    assert.same({ { c, "r" } }, collect(p, 5))
    if c:fileno() == fd then assert.equal(2, #p) end
  end)

  it("drops an object closed during the iteration", function()
    local p <close> = ipc.poller()
    local a = ipc.eventfd(1)
    local b = ipc.eventfd(1)
    assert(p:add(a))
    assert(p:add(b))
    local seen = 0
    for obj in p:wait(5) do
      seen = seen + 1
      -- close the other one: its event in this batch must not come out
      if obj == a then b:close() else a:close() end
    end
    assert.equal(1, seen)
    a:close()
    b:close()
    assert.equal(0, p:count())
  end)

  it("does not spin on a registration a forked child keeps alive after close", function()
    -- the kernel keeps the registration of a closed descriptor while another
    -- process holds its file; level-triggered, it is ready at every wait
    local p <close> = ipc.poller()
    local r, w = ipc.pipe()
    local hold_r, hold_w = ipc.pipe()
    local e <close> = ipc.eventfd(0)
    assert(p:add(r))
    assert(p:add(e))
    local pid = helper.fork(function() hold_r:read(1, 30) end)   -- holds a copy of r
    local reaped = false
    finally(function()
      if not reaped then ipc.signal.kill(pid, "KILL"); ipc.wait(pid, 10) end
      r:close(); w:close(); hold_r:close(); hold_w:close()
    end)
    assert(r:close())
    assert(w:write("x"))
    local c0 = os.clock()
    assert.same({}, collect(p, 0.6))
    local cpu = os.clock() - c0
    assert.is_true(cpu < 0.3, ("wait burnt %.2f s of CPU"):format(cpu))
    assert.equal(1, #p)
    assert(e:add(1))
    assert.same({ { e, "r" } }, collect(p, 5))    -- live registrations survive
    assert(hold_w:write("x"))
    reaped = true
    helper.reap(pid)
  end)

  it("gives the remaining objects after maxevents in the next wait", function()
    local p <close> = ipc.poller()
    local es = {}
    finally(function() for _, e in ipairs(es) do e:close() end end)
    for i = 1, 5 do
      es[i] = ipc.eventfd(1)
      assert(p:add(es[i]))
    end
    local seen = {}
    for _ = 1, 5 do
      local got = {}
      for obj in p:wait(1, 2) do got[#got + 1] = obj end
      assert.is_true(#got <= 2)
      for _, obj in ipairs(got) do
        seen[obj] = true
        assert(obj:take(0))
      end
    end
    for i = 1, 5 do assert.is_true(seen[es[i]]) end
  end)

  it("keeps registered objects alive", function()
    local p <close> = ipc.poller()
    do assert(p:add(ipc.eventfd(1))) end
    collectgarbage()
    collectgarbage()
    local got = collect(p, 1)
    assert.equal(1, #got)
    assert.equal("lipc.eventfd", getmetatable(got[1][1]).__name)
    got[1][1]:close()
  end)

  describe("bad input", function()
    it("ipc.poll rejects bad lists, items and timeouts", function()
      local e <close> = ipc.eventfd(0)
      local closed = ipc.eventfd(0)
      closed:close()
      assert.has_error(function() ipc.poll() end)
      assert.has_error(function() ipc.poll("x") end)
      assert.has_error(function() ipc.poll(e) end)
      assert.has_error(function() ipc.poll({ "x" }) end,
        "bad argument #1 to 'poll' (item 1: lipc object or descriptor expected, got string)")
      assert.has_error(function() ipc.poll({ e, {} }) end)
      assert.has_error(function() ipc.poll({ closed }) end,
        "bad argument #1 to 'poll' (item 1: attempt to use a closed lipc.eventfd)")
      assert.has_error(function() ipc.poll({ -1 }) end)
      assert.has_error(function() ipc.poll({ 2 ^ 40 }) end)
      assert.has_error(function() ipc.poll({ 1.5 }) end)
      assert.has_error(function() ipc.poll({ e }, -1) end)
      assert.has_error(function() ipc.poll({ e }, "x") end)
      assert.has_error(function() ipc.poll({ e }, 0 / 0) end)
      local v, msg, err = ipc.poll({ 999999 }, 0)   -- not an open descriptor
      assert.is_nil(v)
      assert.matches("poll item 1", msg)
      assert.equal(EBADF, err)
    end)

    it("poller methods reject bad objects, events and sizes", function()
      local p <close> = ipc.poller()
      local e <close> = ipc.eventfd(0)
      local closed = ipc.eventfd(0)
      closed:close()
      assert.has_error(function() p:add() end)
      assert.has_error(function() p:add("x") end)
      assert.has_error(function() p:add({}) end)
      assert.has_error(function() p:add(-1) end)
      assert.has_error(function() p:add(closed) end, "attempt to use a closed lipc.eventfd")
      assert.has_error(function() p:add(e, "x") end)
      assert.has_error(function() p:add(e, "") end)
      assert.has_error(function() p:add(e, 5) end)
      assert.has_error(function() p:add(e, "rwx") end)
      assert.has_error(function() p:modify(e) end)
      assert.has_error(function() p:modify(e, "bad") end)
      assert.has_error(function() p:modify(closed, "r") end)
      assert.has_error(function() p:wait(-1) end)
      assert.has_error(function() p:wait("x") end)
      assert.has_error(function() p:wait(0, 0) end)
      assert.has_error(function() p:wait(0, 1e9) end)
      assert.has_error(function() p:wait(0, 1.5) end)
      assert.equal(0, #p)   -- nothing registered by the failures
    end)

    it("poller reports kernel refusals as errors", function()
      local p <close> = ipc.poller()
      local e <close> = ipc.eventfd(0)
      assert(p:add(e))
      local v, msg, err, _ = p:add(e)
      assert.is_nil(v)
      assert.matches("epoll_ctl ADD", msg)
      assert.equal(EEXIST, err)
      local other <close> = ipc.eventfd(0)
      v, _, err = p:modify(other, "r")
      assert.is_nil(v)
      assert.equal(ENOENT, err)
      v, _, err = p:remove(other)
      assert.is_nil(v)
      assert.equal(ENOENT, err)
      v, _, err = p:add(p)   -- an epoll set cannot watch itself
      assert.is_nil(v)
      assert.equal(EINVAL, err)
      v, _, err = p:add(999999)
      assert.is_nil(v)
      assert.equal(EBADF, err)
      -- a huge number that is no descriptor must not size an array first
      local t0 = ipc.clock()
      v, _, err = p:add(1 << 28)
      assert.is_nil(v)
      assert.equal(EBADF, err)
      assert.is_true(ipc.clock() - t0 < 0.5)
      local f = assert(io.open("/proc/self/status"))
      local status = f:read("a")
      f:close()
      local rss_kb = tonumber(status:match("VmRSS:%s*(%d+)"))
      assert.is_true(rss_kb < 1024 * 1024, "RSS " .. rss_kb .. " kB")
      assert.equal(1, #p)
    end)

    it("a closed poller raises, and closes once", function()
      local p = ipc.poller()
      local e <close> = ipc.eventfd(1)
      assert(p:add(e))
      assert.is_true(p:close())
      assert.is_true(p:close())
      assert.equal("lipc.poller(closed)", tostring(p))
      assert.has_error(function() p:add(e) end, "attempt to use a closed lipc.poller")
      assert.has_error(function() p:wait(0) end, "attempt to use a closed lipc.poller")
      assert.has_error(function() p:remove(e) end, "attempt to use a closed lipc.poller")
      assert.has_error(function() p:modify(e, "r") end, "attempt to use a closed lipc.poller")
      assert.has_error(function() return #p end, "attempt to use a closed lipc.poller")
      assert.has_error(function() p.wait(e) end)
    end)
  end)
end)

-- Inside a task (ipc.go) ipc.poll and p:wait wait by yielding to the loop.
describe("polling inside a task", function()
  local function needs_tasks()
    if not ipc.go then pending("needs ipc.go (csrc/task.c is not in this build)") return false end
    return true
  end

  it("ipc.poll yields until another task makes an item ready", function()
    if not needs_tasks() then return end
    local r1, w1 = assert(ipc.pipe())
    local r2, w2 = assert(ipc.pipe())
    finally(function() r1:close(); w1:close(); r2:close(); w2:close() end)
    local ready
    ipc.go(function() ready = ipc.poll({ r1, r2 }, 10) end)
    ipc.go(function() assert(w2:write("x")) end)
    assert(ipc.loop(20))
    assert.equal(1, #ready)
    assert.equal(r2, ready[1])
    assert.is_true(w1:close())
  end)

  it("ipc.poll times out inside a task with {}, an empty list too", function()
    if not needs_tasks() then return end
    local r, w = assert(ipc.pipe())
    finally(function() r:close(); w:close() end)
    local a, b
    ipc.go(function() a = ipc.poll({ r }, 0.05) end)
    ipc.go(function() b = ipc.poll({}, 0.05) end)
    assert(ipc.loop(10))
    assert.same({}, a)
    assert.same({}, b)
    assert.is_true(w:close())
  end)

  it("p:wait yields until another task makes a registration ready", function()
    if not needs_tasks() then return end
    local p <close> = ipc.poller()
    local r, w = assert(ipc.pipe())
    finally(function() r:close(); w:close() end)
    assert(p:add(r))
    local obj, ev
    ipc.go(function()
      local f, s = p:wait(10)
      obj, ev = f(s)
    end)
    ipc.go(function() assert(w:write("x")) end)
    assert(ipc.loop(20))
    assert.equal(r, obj)
    assert.equal("r", ev)
  end)
end)
