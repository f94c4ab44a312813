local ipc = require "lipc"
local helper = require "spec.helper"

local ETIMEDOUT = 110

local fdflags = helper.fdinfo   -- (flags, text) of a descriptor
local O_CLOEXEC, O_NONBLOCK = 0x80000, 0x800

describe("ipc.eventfd", function()
  it("Ctrl-C interrupts a blocked take", function()
    local ok, out = helper.ctrl_c("local e = ipc.eventfd(0)\ne:take()\nprint('not reached')")
    assert.is_falsy(ok)
    assert.matches("interrupted!", out)
    assert.is_nil(out:find("not reached"))
  end)

  it("counts in counter mode: take returns the sum and resets it", function()
    local e <close> = ipc.eventfd(0)
    assert.is_true(e:add(5))
    assert.is_true(e:add(2))
    assert.equal(7, e:take())
    local v, msg, err = e:take(0)
    assert.is_nil(v)
    assert.equal("timeout", msg)
    assert.equal(ETIMEDOUT, err)
  end)

  it("starts from the initial value", function()
    local e <close> = ipc.eventfd(42)
    assert.equal(42, e:take(0))
  end)

  it("hands out one at a time in semaphore mode", function()
    local e <close> = ipc.eventfd(3, { semaphore = true })
    assert.is_true(e:issemaphore())
    assert.equal(1, e:take(0))
    assert.equal(1, e:take(0))
    assert.equal(1, e:take(0))
    assert.is_nil((e:take(0)))
  end)

  it("is close-on-exec and exposes its descriptor", function()
    local e <close> = ipc.eventfd(0)
    local fd = e:fileno()
    assert.is_true(math.type(fd) == "integer" and fd >= 0)   -- 0 when stdin was closed
    local flags, text = fdflags(fd)
    assert.is_true(flags & O_CLOEXEC ~= 0)
    assert.is_true(flags & O_NONBLOCK == 0)   -- blocking, as C expects
    local nb <close> = ipc.eventfd(0, { nonblock = true })
    assert.is_true(fdflags(nb:fileno()) & O_NONBLOCK ~= 0)
    assert.matches("eventfd%-count:", text)
    assert.matches("lipc.eventfd%(fd=%d+, counter%)", tostring(e))
    e:close()
    assert.equal("lipc.eventfd(closed)", tostring(e))
  end)

  it("adds up the values of a forked child (counter mode)", function()
    local e <close> = ipc.eventfd(0)
    local pid = helper.fork(function()
      for i = 1, 10 do assert(e:add(i)) end
    end)
    local total = 0
    while total < 55 do
      total = total + assert(e:take(10))
    end
    assert.equal(55, total)
    helper.reap(pid)
    assert.is_nil((e:take(0)))
  end)

  it("works as a semaphore between a parent and its children", function()
    local work <close> = ipc.eventfd(0, { semaphore = true })
    local done <close> = ipc.eventfd(0)
    local pids = {}
    for i = 1, 4 do
      pids[i] = helper.fork(function()
        assert(work:take(10) == 1)
        assert(done:add(1))
      end)
    end
    assert(work:add(4))
    local finished = 0
    while finished < 4 do finished = finished + assert(done:take(10)) end
    for _, pid in ipairs(pids) do helper.reap(pid) end
    assert.is_nil((work:take(0)))   -- every token was taken exactly once
  end)

  it("blocks add while the counter would overflow, until a take makes room", function()
    local e <close> = ipc.eventfd(0)
    local go <close> = ipc.eventfd(0)
    assert.is_true(e:add(0xfffffffffffffffe))   -- the maximum (-2 as a Lua integer)
    local v, msg = e:add(1, 0)
    assert.is_nil(v)
    assert.equal("timeout", msg)
    local pid = helper.fork(function()
      assert(go:take(10))
      local got = assert(e:take(10))
      assert(got == 0xfffffffffffffffe, "child took " .. tostring(got))
    end)
    assert(go:add(1))
    assert.is_true(e:add(1, 10))   -- unblocked by the child's take
    helper.reap(pid)
    assert.equal(1, e:take(0))
  end)

  it("honours a timeout even when another process empties the counter first", function()
    -- several takers on one semaphore: a wake-up may find the value gone,
    -- the timed take must then wait again, never block in read
    local e <close> = ipc.eventfd(0, { semaphore = true })
    local got <close> = ipc.eventfd(0)
    local pids = {}
    for i = 1, 3 do
      pids[i] = helper.fork(function()
        local n = 0
        while e:take(0.3) do n = n + 1 end
        assert(got:add(n + 1000))   -- +1000: never add 0
      end)
    end
    assert(e:add(100))
    for _, pid in ipairs(pids) do helper.reap(pid) end
    assert.equal(3000 + 100, got:take(0))   -- every token taken once
  end)

  it("a timed add on a blocking descriptor leaves it blocking", function()
    local e <close> = ipc.eventfd(0)
    assert.is_true(e:add(0xfffffffffffffffe, 1))
    assert.is_nil((e:add(5, 0.05)))
    assert.is_true(fdflags(e:fileno()) & O_NONBLOCK == 0)
    assert.equal(0xfffffffffffffffe, e:take(0))
  end)

  it("times out add and take after about the given time, without spinning", function()
    local e <close> = ipc.eventfd(0)
    local cpu0, t0 = os.clock(), ipc.clock()
    local v, msg, err = e:take(0.2)
    local secs = ipc.clock() - t0
    assert.is_nil(v)
    assert.equal("timeout", msg)
    assert.equal(ETIMEDOUT, err)
    assert.is_true(secs >= 0.18 and secs <= 2, "took " .. secs)
    assert.is_true(os.clock() - cpu0 < 0.1)   -- slept, did not spin
    assert(e:add(0xfffffffffffffffe))
    t0 = ipc.clock()
    v, msg = e:add(1, 0.2)
    secs = ipc.clock() - t0
    assert.is_nil(v)
    assert.equal("timeout", msg)
    assert.is_true(secs >= 0.18 and secs <= 2, "took " .. secs)
  end)
  it("with nonblock = true, calls without a timeout try once", function()
    local e <close> = ipc.eventfd(0, { nonblock = true })
    local v, msg, err = e:take()
    assert.is_nil(v)
    assert.equal("timeout", msg)
    assert.equal(ETIMEDOUT, err)
    assert.is_true(e:add(3))
    assert.equal(3, e:take())
  end)

  it("is readable by a C-level reader in the shell (python3 os.read)", function()
    -- an outside program reads the counter through an inherited descriptor
    local e <close> = ipc.eventfd(9)
    local fd = e:fileno()
    local py = ("import os,struct; print(struct.unpack('Q', os.read(%d, 8))[0])"):format(fd)
    -- the descriptor is close-on-exec: the shell must not see it
    local out = helper.sh(("/usr/bin/python3 -c %s 2>&1"):format(helper.shquote(py)))
    assert.matches("Bad file descriptor", out)
    assert.equal(9, e:take(0))
  end)

  it("hands its counter to an exec'd python3 as stdin", function()
    if not ipc.exec then
      pending("ipc.exec is not in this build")
      return
    end
    local e <close> = ipc.eventfd(0)
    assert(e:add(12345))
    local py = "import os,struct; os.write(1, b'%d' % struct.unpack('Q', os.read(0, 8))[0])"
    local p = assert(ipc.exec { "/usr/bin/python3", "-c", py, stdin = e, stdout = "pipe" })
    local out = p.stdout:read("a", 10)
    p.stdout:close()
    local how, code = p:wait(10)
    assert.equal("exited", how)
    assert.equal(0, code)
    assert.equal("12345", out)
    assert.is_nil((e:take(0)))   -- python took it
  end)

  it("is collected and closed by the garbage collector", function()
    local fd
    do
      local e = ipc.eventfd(0)
      fd = e:fileno()
    end
    collectgarbage()
    collectgarbage()
    local f = io.open("/proc/self/fdinfo/" .. fd)
    if f then
      local text = f:read("a")
      f:close()
      assert.is_nil(text:match("eventfd%-count"))
    end
  end)

  describe("bad input", function()
    it("rejects bad constructor arguments", function()
      assert.has_error(function() ipc.eventfd(-1) end)
      assert.has_error(function() ipc.eventfd(2 ^ 32) end)
      assert.has_error(function() ipc.eventfd(1.5) end)
      assert.has_error(function() ipc.eventfd("x") end)
      assert.has_error(function() ipc.eventfd(0, 5) end)
      assert.has_error(function() ipc.eventfd(0, { bogus = true }) end,
        "bad argument #2 to 'eventfd' (unknown option 'bogus')")
      assert.has_error(function() ipc.eventfd(0, { semaphore = "yes" }) end)
      assert.has_error(function() ipc.eventfd(0, { nonblock = 1 }) end)
    end)

    it("rejects bad amounts and timeouts", function()
      local e <close> = ipc.eventfd(0)
      assert.has_error(function() e:add(0) end)
      assert.has_error(function() e:add(-1) end)   -- 0xffffffffffffffff is not allowed
      assert.has_error(function() e:add(0xffffffffffffffff) end)
      assert.has_error(function() e:add(1.5) end)
      assert.has_error(function() e:add(0 / 0) end)
      assert.has_error(function() e:add("x") end)
      assert.has_error(function() e:add({}) end)
      assert.has_error(function() e:add(1, -1) end)
      assert.has_error(function() e:add(1, "soon") end)
      assert.has_error(function() e:take(-1) end)
      assert.has_error(function() e:take(0 / 0) end)
      assert.has_error(function() e:take("x") end)
      assert.is_nil((e:take(0)))   -- nothing was added by the failures
    end)

    it("rejects closed objects and foreign self arguments", function()
      local e = ipc.eventfd(1)
      assert.is_true(e:close())
      assert.is_true(e:close())
      assert.has_error(function() e:add(1) end, "attempt to use a closed lipc.eventfd")
      assert.has_error(function() e:take(0) end, "attempt to use a closed lipc.eventfd")
      assert.has_error(function() e:fileno() end, "attempt to use a closed lipc.eventfd")
      local take = e.take
      assert.has_error(function() take(nil) end)
      assert.has_error(function() take({}) end)
      assert.has_error(function() take(io.stdout) end)
    end)
  end)
end)
