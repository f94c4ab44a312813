--- Specs for the guard a region keeps over the semaphores, mutexes and
-- condition variables this process placed in it (csrc/shm.c registry,
-- csrc/sem.c, csrc/sync.c): no placing over a live object, no region writer
-- over one, no unmapping under a held robust lock.  Each case that crashed or
-- hung before runs in a forked child, so a crash or a hang fails only it.
local ipc = require "lipc"
local helper = require "spec.helper"

local SEM, MU, CV = ipc.sem.SIZE, ipc.mutex.SIZE, ipc.cond.SIZE

--- Run fn in a forked child; the test fails unless it exits 0 within limit
-- seconds (default 30): a crash there is "signaled", a hang "timeout".
local function in_child(fn, limit)
  local pid = helper.fork(fn)
  local how, code = ipc.wait(pid, limit or 30)
  if not how then
    ipc.signal.kill(pid, "KILL")
    ipc.wait(pid, 10)
    how = "timeout"
  end
  assert.same({ "exited", 0 }, { how, code })
end

--- fn(...) raises a message containing text (plain).
local function refused(text, fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "not refused: expected an error with " .. text)
  assert(tostring(err):find(text, 1, true), tostring(err))
  return err
end

local function bytes(off, len, kind)
  return ("region bytes %d..%d hold a live lipc.%s"):format(off, off + len - 1, kind)
end

describe("a region's live objects", function()
  it("refuse every region writer over their bytes, and nothing around them", function()
    local r <close> = assert(ipc.shm.anonymous(4096))
    local s <close> = assert(ipc.sem.new(r, 0, 1))
    local m <close> = assert(ipc.mutex.new(r, 64))
    local c <close> = assert(ipc.cond.new(r, 128))
    for _, o in ipairs { { 0, SEM, "sem" }, { 64, MU, "mutex" }, { 128, CV, "cond" } } do
      local off, len, kind = o[1], o[2], o[3]
      local msg = bytes(off, len, kind)
      refused(msg, r.write, r, off + len - 1, "x")
      refused(msg, r.write, r, math.max(0, off - 2), "xyz")
      assert.matches("bad argument #1 to 'write'", refused(msg, function() return r:write(off, "x") end))
      refused("hold a live lipc.", r.fill, r, 0)
      refused(msg, r.fill, r, 7, off + 1, 1)
      refused(msg, r.pack, r, off, "i4", 1)
      refused(msg, r.store, r, off, 1)
      refused(msg, r.add, r, off, 1)
      refused(msg, r.cas, r, off, 0, 1)
      assert.equal(len, #r:read(off, len), "reading stays allowed")
      r:load(off)
    end
    -- the bytes just outside each object stay free
    assert.equal(SEM + 1, r:write(SEM, "x"))
    assert.equal(64, r:fill(0, 56, 8))
    assert.is_true(r:store(120, 7))
    assert.equal(128 + CV + 8, r:pack(128 + CV, "i8", 1))
    assert.equal(4096, r:fill(0, 256))
    -- the objects still work
    assert.equal(1, s:value())
    assert.is_true(m:trylock())
    assert.is_true(m:unlock())
    assert.is_true(c:signal())
    -- once closed, their bytes are plain bytes again
    s:close()
    m:close()
    c:close()
    assert.equal(4096, r:fill(0))
  end)

  it("refuse another object over them; attach joins only the same kind at the same offset", function()
    local r <close> = assert(ipc.shm.anonymous(4096))
    local m <close> = assert(ipc.mutex.new(r, 64))
    refused(bytes(64, MU, "mutex"), ipc.mutex.new, r, 64)
    refused(bytes(64, MU, "mutex"), ipc.mutex.attach, r, 72)
    refused(bytes(64, MU, "mutex"), ipc.sem.new, r, 64, 0)
    refused(bytes(64, MU, "mutex"), ipc.sem.attach, r, 48)
    refused(bytes(64, MU, "mutex"), ipc.cond.new, r, 96)
    local a = assert(ipc.mutex.attach(r, 64))
    assert.is_true(a:lock(1))
    assert.equal(ipc.errno.EDEADLK, select(3, m:trylock()), "the same mutex, held by this thread")
    a:close()                                     -- not the last handle: stays held
    assert.is_true(m:unlock())
    local c <close> = assert(ipc.cond.new(r, 256))
    local c2 <close> = assert(ipc.cond.attach(r, 256))
    assert.is_true(c:signal())
    refused(bytes(256, CV, "cond"), ipc.cond.new, r, 256)
    c2:close()
    -- a cond is attached only where one was made
    local none, msg, err = ipc.cond.attach(r, 512)
    assert.is_nil(none)
    assert.matches("no lipc.cond there", msg)
    assert.equal(ipc.errno.EINVAL, err)
    m:close()
    assert.is_true(ipc.mutex.new(r, 64):close())
  end)

  it("regression: placing a mutex over a live semaphore is refused (glibc aborted at the next post)", function()
    in_child(function()
      local r = assert(ipc.shm.anonymous(4096))
      local s = assert(ipc.sem.new(r, 0, 1))
      local ok, m = pcall(ipc.mutex.new, r, 0)
      if ok then m:trylock() end
      assert(s:post())
      assert(not ok, "mutex.new over a live semaphore")
      assert(m:find(bytes(0, SEM, "sem"), 1, true), m)
      assert(s:value() == 2)
    end)
  end)

  it("regression: filling over a live cond is refused, and its signal never sleeps", function()
    in_child(function()
      local r = assert(ipc.shm.anonymous(4096))
      local cv = assert(ipc.cond.new(r, 256))
      local ok, err = pcall(r.fill, r, 255)
      assert(cv:signal())
      assert(cv:broadcast())
      assert(not ok and err:find(bytes(256, CV, "cond"), 1, true), tostring(err))
    end, 10)
  end)

  it("a cond overwritten through another mapping (not guarded) still never hangs", function()
    in_child(function()
      local name = helper.name()
      local r = assert(ipc.shm.open(name, { create = true, size = 4096 }))
      local other = assert(ipc.shm.open(name))
      local mu = assert(ipc.mutex.new(r, 0))
      local cv = assert(ipc.cond.new(r, 256))
      assert(other:fill(255, 256, CV))
      assert(cv:signal())
      assert(cv:broadcast())
      assert(mu:lock())
      local ok, msg = cv:wait(mu, 0.2)
      assert(ok or msg == "timeout")
      other:close()
      r:close()
    end, 10)
  end)
end)

describe("a held robust mutex", function()
  -- m1 (region r1) and m2 (region r2) held; then something happens to m1;
  -- then m1:close(); r1:close(); m2:close() crashed in glibc's unlock of m2
  -- (SIGSEGV in __pthread_mutex_unlock_full): the thread's robust list ran
  -- through the unmapped m1.
  local function two_held(what)
    in_child(function()
      local r1 = assert(ipc.shm.anonymous(4096))
      local r2 = assert(ipc.shm.anonymous(4096))
      local m1 = assert(ipc.mutex.new(r1, 64))
      local m2 = assert(ipc.mutex.new(r2, 64))
      assert(m1:lock())
      assert(m2:lock())
      local check = what(r1, m1)   -- checked last: the old code crashed before
      assert(m1:close())
      assert(r1:close())
      assert(m2:close())
      local r3 = assert(ipc.shm.anonymous(4096))
      local m3 = assert(ipc.mutex.new(r3, 0))
      assert(m3:lock())
      assert(m3:unlock())
      check()
    end)
  end

  it("regression: cannot be filled over, so closing its region later does not crash", function()
    two_held(function(r1)
      local ok, err = pcall(r1.fill, r1, 65)
      return function() assert(not ok and err:find(bytes(64, MU, "mutex"), 1, true), tostring(err)) end
    end)
  end)

  it("regression: cannot be re-initialised by mutex.new", function()
    two_held(function(r1)
      local ok, err = pcall(ipc.mutex.new, r1, 64)
      return function() assert(not ok and err:find(bytes(64, MU, "mutex"), 1, true), tostring(err)) end
    end)
  end)

  it("regression: cannot be destroyed through another handle (EBUSY)", function()
    two_held(function(r1)
      local a = assert(ipc.mutex.attach(r1, 64))
      local ok, msg, err = a:destroy()
      assert(a:close())
      return function()
        assert(ok == nil and err == ipc.errno.EBUSY, tostring(msg))
        assert(msg:find("pthread_mutex_destroy", 1, true), msg)
      end
    end)
  end)

  it("held by another process cannot be destroyed (EBUSY)", function()
    local r <close> = assert(ipc.shm.anonymous(4096))
    local m <close> = assert(ipc.mutex.new(r, 64))
    local held <close> = assert(ipc.sem.new(r, 128, 0))
    local go <close> = assert(ipc.sem.new(r, 192, 0))
    local pid = helper.fork(function()
      assert(m:lock())
      held:post()
      go:wait(20)
      assert(m:unlock())
    end)
    assert.is_true(held:wait(20))
    assert.same({ nil, "pthread_mutex_destroy: Device or resource busy", ipc.errno.EBUSY }, { m:destroy() })
    go:post()
    helper.reap(pid)
    assert.is_true(m:destroy())
  end)

  it("held through another mapping of the same segment: mutex.new is EBUSY; " ..
     "overwritten there, its region stays mapped and nothing crashes", function()
    in_child(function()
      local name = helper.name()
      local r1 = assert(ipc.shm.open(name, { create = true, size = 4096 }))
      local view = assert(ipc.shm.open(name))
      local r2 = assert(ipc.shm.anonymous(4096))
      local m1 = assert(ipc.mutex.new(r1, 64))
      local m2 = assert(ipc.mutex.new(r2, 64))
      assert(m1:lock())
      assert(m2:lock())
      local x, msg, err = ipc.mutex.new(view, 64)
      -- the guard is per mapping: the view may scribble over m1 (undefined
      -- for m1's users), but this process must survive it
      assert(view:fill(65, 64, MU))
      assert(m1:close())
      assert(r1:close())
      assert(m2:close())
      assert(view:close())
      assert(x == nil and err == ipc.errno.EBUSY, tostring(msg))
    end)
  end)
end)
