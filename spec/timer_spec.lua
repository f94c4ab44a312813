local ipc = require "lipc"
local helper = require "spec.helper"

local ETIMEDOUT = 110
local O_CLOEXEC, O_NONBLOCK = 0x80000, 0x800

describe("ipc.timer", function()
  it("expires once after its delay", function()
    local t0 = ipc.clock()
    local tm <close> = assert(ipc.timer(0.1))
    assert.equal(1, tm:wait(10))
    local took = ipc.clock() - t0
    assert.is_true(took >= 0.1 and took < 0.5, "took " .. took)
    -- a one-shot timer does not expire again
    assert.same({ nil, "timeout", ETIMEDOUT }, { tm:wait(0.05) })
  end)

  it("counts periodic expirations since the last wait", function()
    local tm <close> = assert(ipc.timer(0.02, 0.02))
    assert.equal(1, tm:wait(10))
    assert.is_true(ipc.sleep(0.2))
    local n = tm:wait(10)
    assert.is_true(n >= 5 and n <= 12, "expirations " .. n)
    -- then the next one, about a period later
    local t0 = ipc.clock()
    assert.equal(1, tm:wait(10))
    assert.is_true(ipc.clock() - t0 < 0.2)
  end)

  it("expires at once for a delay of 0", function()
    local tm <close> = assert(ipc.timer(0))
    assert.equal(1, tm:wait(1))
  end)

  it("returns the timeout triple, and 0 tries once", function()
    local tm <close> = assert(ipc.timer(60))
    local t0 = ipc.clock()
    assert.same({ nil, "timeout", ETIMEDOUT }, { tm:wait(0.05) })
    assert.is_true(ipc.clock() - t0 >= 0.05)
    assert.same({ nil, "timeout", ETIMEDOUT }, { tm:wait(0) })
  end)

  it("rearms with reset, dropping pending expirations", function()
    local tm <close> = assert(ipc.timer(0))
    assert.is_true(ipc.sleep(0.01))
    assert.is_true(tm:reset(0.05, 0.05))
    assert.matches("after=0.05, every=0.05", tostring(tm))
    local t0 = ipc.clock()
    assert.equal(1, tm:wait(10))
    assert.is_true(ipc.clock() - t0 >= 0.04)
    assert.is_true(tm:reset(60))
    assert.same({ nil, "timeout", ETIMEDOUT }, { tm:wait(0) })
  end)

  it("is a close-on-exec, nonblocking descriptor that ipc.poll can wait for", function()
    local tm <close> = assert(ipc.timer(0.05))
    local fd = tm:fileno()
    assert.is_true(math.type(fd) == "integer" and fd >= 0)   -- 0 when stdin was closed
    local flags, text = helper.fdinfo(fd)
    assert.is_true(flags & O_CLOEXEC ~= 0)
    assert.is_true(flags & O_NONBLOCK ~= 0)
    assert.matches("clockid:%s*1", text)   -- CLOCK_MONOTONIC
    local ready = ipc.poll({ tm }, 10)
    assert.equal(1, #ready)
    assert.equal(tm, ready[1])
    assert.equal(1, tm:wait(0))
  end)

  it("shows itself, closes once, refuses use after close", function()
    local tm = assert(ipc.timer(1.5, 0.25))
    assert.matches("^lipc%.timer%(fd=%d+, after=1%.5, every=0%.25%)$", tostring(tm))
    local once <close> = assert(ipc.timer(2))
    assert.matches("^lipc%.timer%(fd=%d+, after=2%)$", tostring(once))
    assert.is_true(tm:close())
    assert.is_true(tm:close())
    assert.equal("lipc.timer(closed)", tostring(tm))
    assert.has_error(function() tm:wait(0) end, "attempt to use a closed lipc.timer")
    assert.has_error(function() tm:fileno() end)
    assert.has_error(function() tm:reset(1) end)
  end)

  it("checks its arguments", function()
    assert.has_error(function() ipc.timer() end)
    assert.has_error(function() ipc.timer(-1) end)
    assert.has_error(function() ipc.timer(0 / 0) end)
    assert.has_error(function() ipc.timer("1") end)
    assert.has_error(function() ipc.timer(1, -1) end)
    assert.has_error(function() ipc.timer(1e10) end)
    local tm <close> = assert(ipc.timer(60))
    assert.has_error(function() tm:wait(-1) end)
    assert.has_error(function() tm:reset() end)
    assert.has_error(function() tm.wait(io.stdout) end)
  end)

  it("waits in tasks: two timers tick side by side in one loop", function()
    local fast <close> = assert(ipc.timer(0.01, 0.01))
    local slow <close> = assert(ipc.timer(0.05, 0.05))
    local ticks = { fast = 0, slow = 0 }
    local t0 = ipc.clock()
    local function counter(tm, key, n)
      return function()
        while ticks[key] < n do ticks[key] = ticks[key] + tm:wait(10) end
        return ipc.clock() - t0
      end
    end
    local a = ipc.go(counter(fast, "fast", 20))
    local b = ipc.go(counter(slow, "slow", 4))
    assert.is_true(ipc.loop(30))
    local _, ta = a:join()
    local _, tb = b:join()
    assert.is_true(ticks.fast >= 20 and ticks.slow >= 4)
    -- side by side: both in about max(0.2, 0.2) s, not their sum
    assert.is_true(ta >= 0.19 and ta < 0.35, "fast took " .. ta)
    assert.is_true(tb >= 0.19 and tb < 0.35, "slow took " .. tb)
  end)

  it("times out a wait in a task while another task runs", function()
    local tm <close> = assert(ipc.timer(60))
    local ticks = 0
    local t0 = ipc.clock()
    local a = ipc.go(function() return tm:wait(0.1) end)
    local b = ipc.go(function() while ipc.clock() - t0 < 0.2 do ticks = ticks + 1; ipc.sleep(0.01) end end)
    assert.is_true(ipc.loop(30))
    assert.same({ true, nil, "timeout", ETIMEDOUT }, { a:join() })
    assert.equal("done", b:status())
    assert.is_true(ticks >= 5)
  end)

  it("Ctrl-C interrupts a wait outside a task", function()
    local ok, out, status = helper.ctrl_c([[
      local tm = ipc.timer(60)
      io.stdout:write("ready\n"); io.stdout:flush()
      tm:wait()
      print("not reached")
    ]], { ready = "ready" })
    assert.is_false(ok)
    assert.equal(1, status, out)
    assert.matches("interrupted!", out)
    assert.is_nil(out:find("not reached", 1, true), out)
  end)
end)
