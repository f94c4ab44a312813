--- Specs for ipc.mutex.* and ipc.cond.* (process-shared pthread objects in a region).
local ipc = require "lipc"
local helper = require "spec.helper"

local join = helper.reap

-- Layout of the test region.
local MU, CV, SEM, STATE = 0, 64, 128, 256

describe("ipc.mutex", function()
  it("locks, unlocks, reports relock and foreign unlock as errors", function()
    local r <close> = assert(ipc.shm.anonymous(4096))
    local mu <close> = assert(ipc.mutex.new(r, MU))
    assert.equal("lipc.mutex(offset 0)", tostring(mu))
    assert.is_true(mu:lock())
    local ok, _, err = mu:lock(1)
    assert.is_nil(ok)
    assert.equal(ipc.errno.EDEADLK, err)
    assert.is_true(mu:unlock())
    ok, _, err = mu:unlock()
    assert.is_nil(ok)
    assert.equal(ipc.errno.EPERM, err)
    assert.is_true(mu:trylock())
    assert.is_true(mu:unlock())
  end)

  it("is recursive on request", function()
    local r <close> = assert(ipc.shm.anonymous(4096))
    local mu <close> = assert(ipc.mutex.new(r, MU, { recursive = true }))
    assert.is_true(mu:lock())
    assert.is_true(mu:lock(0))
    assert.is_true(mu:trylock())
    for _ = 1, 3 do assert.is_true(mu:unlock()) end
    assert.is_nil((mu:unlock()))
  end)

  it("excludes another process; trylock and timed lock time out", function()
    local r <close> = assert(ipc.shm.anonymous(4096))
    local mu <close> = assert(ipc.mutex.new(r, MU))
    local held <close> = assert(ipc.sem.new(r, SEM, 0))
    local go <close> = assert(ipc.sem.new(r, SEM + 64, 0))
    local pid = helper.fork(function()
      assert(mu:lock())
      held:post()
      assert(go:wait(30))
      assert(mu:unlock())
    end)
    assert.is_true(held:wait(20))
    assert.is_false(mu:trylock())
    assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { mu:lock(0) })
    local t0 = ipc.clock()
    assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { mu:lock(0.3) })
    assert.is_true(ipc.clock() - t0 >= 0.25)
    go:post()
    assert.is_true(mu:lock(20))
    assert.is_true(mu:unlock())
    join(pid)
  end)

  it("is robust: the next lock after the holder is SIGKILLed returns true, 'owner died'", function()
    local r <close> = assert(ipc.shm.anonymous(4096))
    local mu <close> = assert(ipc.mutex.new(r, MU))
    local held <close> = assert(ipc.sem.new(r, SEM, 0))
    local never <close> = assert(ipc.sem.new(r, SEM + 64, 0))
    local pid = assert(ipc.fork())
    if pid == 0 then
      mu:lock()
      held:post()
      never:wait(60)
      ipc.exit(1)
    end
    assert.is_true(held:wait(20))
    assert.is_true(os.execute("kill -KILL " .. pid))
    assert.equal("signaled", (ipc.wait(pid, 20)))
    local ok, note = mu:lock(10)
    assert.is_true(ok)
    assert.equal("owner died", note)
    assert.is_true(mu:unlock())
    ok, note = mu:lock(10)
    assert.is_true(ok)
    assert.is_nil(note, "made consistent")
    assert.is_true(mu:unlock())
  end)

  it("a forked child's close unlocks what it locked through the inherited handle", function()
    -- glibc links held robust mutexes through the mutexes themselves: one
    -- left held and unmapped would crash the child's next robust lock
    local r1 = assert(ipc.shm.anonymous(4096))
    local r2 <close> = assert(ipc.shm.anonymous(4096))
    local m1 = assert(ipc.mutex.new(r1, MU))
    local m2 <close> = assert(ipc.mutex.new(r2, MU))
    finally(function() m1:close(); r1:close() end)
    local pid = helper.fork(function()
      assert(m1:lock())
      assert(m1:close())
      assert(r1:close())
      assert(m2:lock())
      assert(m2:unlock())
    end)
    join(pid)
    local ok, note = m1:lock(10)
    assert.is_true(ok)
    assert.is_nil(note, "the child unlocked it before exiting")
    assert.is_true(m1:unlock())
  end)

  it("attaches in an unrelated process mapping the same POSIX segment", function()
    local name = helper.name()
    local r <close> = assert(ipc.shm.open(name, { create = true, size = 4096 }))
    local mu <close> = assert(ipc.mutex.new(r, MU))
    assert.is_true(mu:lock())
    local ok, code, out = helper.run_lua(([[
local ipc = require "lipc"
local r = assert(ipc.shm.open(%q))
local mu = assert(ipc.mutex.attach(r, 0))
assert(mu:trylock() == false)
local ok, msg = mu:lock(0.1)
print(ok, msg)
]]):format(name))
    assert.is_true(ok, out)
    assert.equal(0, code)
    assert.equal("nil\ttimeout\n", out)
    assert.is_true(mu:unlock())
  end)
end)

describe("ipc.cond", function()
  it("hands a value back and forth between processes", function()
    local r <close> = assert(ipc.shm.anonymous(4096))
    local mu <close> = assert(ipc.mutex.new(r, MU))
    local cv <close> = assert(ipc.cond.new(r, CV))
    assert.equal("lipc.cond(offset 64)", tostring(cv))
    r:store(STATE, 0)
    local pid = helper.fork(function()
      for round = 1, 100 do
        assert(mu:lock())
        while r:load(STATE) ~= 2 * round - 1 do assert(cv:wait(mu, 20)) end
        r:store(STATE, 2 * round)
        assert(cv:broadcast())
        assert(mu:unlock())
      end
    end)
    for round = 1, 100 do
      assert.is_true(mu:lock())
      r:store(STATE, 2 * round - 1)
      assert.is_true(cv:signal())
      while r:load(STATE) ~= 2 * round do assert.is_true(cv:wait(mu, 20)) end
      assert.is_true(mu:unlock())
    end
    join(pid)
    assert.equal(200, r:load(STATE))
  end)

  it("times out and returns with the mutex held again", function()
    local r <close> = assert(ipc.shm.anonymous(4096))
    local mu <close> = assert(ipc.mutex.new(r, MU))
    local cv <close> = assert(ipc.cond.new(r, CV))
    assert.is_true(mu:lock())
    local t0 = ipc.clock()
    assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { cv:wait(mu, 0.3) })
    assert.is_true(ipc.clock() - t0 >= 0.25)
    assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { cv:wait(mu, 0) })
    assert.is_true(mu:unlock())
    local ok, _, err = cv:wait(mu, 0.1)
    assert.is_nil(ok)
    assert.equal(ipc.errno.EPERM, err)
  end)

  it("interoperates with a C program using the same segment (mutex, cond, sem)", function()
    local exe, gcc_out = helper.compile_c([[
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int fd = shm_open(argv[1], O_RDWR, 0);
  if (fd < 0) return 2;
  unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return 3;
  pthread_mutex_t *mu = (pthread_mutex_t *)(p + 0);
  pthread_cond_t *cv = (pthread_cond_t *)(p + 64);
  sem_t *sem = (sem_t *)(p + 128);
  if (pthread_mutex_lock(mu) != 0) return 4;
  __atomic_store_n((int64_t *)(p + 256), 42, __ATOMIC_SEQ_CST);
  pthread_cond_signal(cv);
  pthread_mutex_unlock(mu);
  if (sem_wait(sem) != 0) return 5;
  printf("%lld\n", (long long)__atomic_load_n((int64_t *)(p + 264), __ATOMIC_SEQ_CST));
  return 0;
}
]], "-O1 -lpthread -lrt")
    assert.is_truthy(exe, gcc_out)
    local name = helper.name()
    local r <close> = assert(ipc.shm.open(name, { create = true, size = 4096 }))
    local mu <close> = assert(ipc.mutex.new(r, MU))
    local cv <close> = assert(ipc.cond.new(r, CV))
    local sem <close> = assert(ipc.sem.new(r, SEM, 0))
    assert.is_true(mu:lock())
    local out = helper.path(".out")
    local pid = helper.fork(function()
      local ok = os.execute(exe .. " " .. name .. " > " .. out)
      return ok == true
    end)
    while r:load(STATE) ~= 42 do assert.is_true(cv:wait(mu, 20)) end
    assert.is_true(mu:unlock())
    r:store(STATE + 8, 4711)
    assert.is_true(sem:post())
    join(pid)
    local rf = assert(io.open(out))
    assert.equal("4711\n", rf:read("a"))
    rf:close()
    os.remove(out)
    os.remove(exe)
  end)
end)

describe("Ctrl-C", function()
  local cases = {
    { "mutex lock", "local mu = ipc.mutex.new(r, 0); local held = ipc.sem.new(r, 128, 0); " ..
      "local never = ipc.sem.new(r, 192, 0); " ..
      "if ipc.fork() == 0 then mu:lock(); held:post(); never:wait(5); ipc.exit(0) end; " ..
      "assert(held:wait(10)); print('ready'); io.stdout:flush(); mu:lock()" },
    { "cond wait", "local mu = ipc.mutex.new(r, 0); local cv = ipc.cond.new(r, 64); assert(mu:lock()); " ..
      "print('ready'); io.stdout:flush(); while true do cv:wait(mu) end" },
    { "sem wait", "local s = ipc.sem.new(r, 128, 0); print('ready'); io.stdout:flush(); s:wait()" },
    { "semset op", "local set <close> = assert(ipc.semset.get(0, 1)); print('ready'); io.stdout:flush(); " ..
      "set:op{{0, -1}}" },
  }
  for _, case in ipairs(cases) do
    it("interrupts a blocking " .. case[1], function()
      -- SIGINT once it printed "ready" and sleeps in the futex or semop
      local _, text, status = helper.ctrl_c("local r = ipc.shm.anonymous(4096); " .. case[2] .. "\n",
                                            { ready = "ready", calls = { "futex", "semop", "semtimedop" } })
      assert.matches("interrupted!", text)
      assert.equal(1, status)
    end)
  end
end)

describe("ipc.mutex / ipc.cond bad input", function()
  it("rejects wrong types, offsets, options and closed objects", function()
    local r <close> = assert(ipc.shm.anonymous(4096))
    assert.has_error(function() ipc.mutex.new(r, 4) end)
    assert.has_error(function() ipc.mutex.new(r, 4096 - 8) end)
    assert.has_error(function() ipc.mutex.new(r, -8) end)
    assert.has_error(function() ipc.mutex.new(r, 0, { robust = "yes" }) end)
    assert.has_error(function() ipc.mutex.new(r, 0, { robst = true }) end,
      "bad argument #3 to 'mutex.new' (unknown option 'robst')")
    assert.has_error(function() ipc.mutex.new({}, 0) end)
    assert.has_error(function() ipc.mutex.attach(r, 0, {}) end)
    assert.has_error(function() ipc.cond.new(r, 4) end)
    assert.has_error(function() ipc.cond.new(r, 8192) end)
    assert.has_error(function() ipc.cond.new(r, 0, 1) end)
    assert.has_error(function() ipc.cond.new("r", 0) end)
    local mu = assert(ipc.mutex.new(r, 0))
    local cv = assert(ipc.cond.new(r, 64))
    assert.has_error(function() mu:lock(-1) end)
    assert.has_error(function() mu:lock("x") end)
    assert.has_error(function() cv:wait() end)
    assert.has_error(function() cv:wait(cv) end)
    assert.has_error(function() cv:wait(mu, -2) end)
    mu:close()
    cv:close()
    assert.equal("lipc.mutex(closed)", tostring(mu))
    for _, m in ipairs { "lock", "unlock", "trylock", "destroy" } do
      assert.has_error(function() mu[m](mu) end, "attempt to use a closed lipc.mutex")
    end
    for _, m in ipairs { "signal", "broadcast", "destroy" } do
      assert.has_error(function() cv[m](cv) end, "attempt to use a closed lipc.cond")
    end
    local cv2 <close> = assert(ipc.cond.new(r, 64))
    assert.has_error(function() cv2:wait(mu) end, "attempt to use a closed lipc.mutex")
    local ro = helper.path(".ro")
    local fw = assert(io.open(ro, "w"))
    fw:write(string.rep("\0", 4096))
    fw:close()
    local m <close> = assert(ipc.mmap(ro))
    assert.has_error(function() ipc.mutex.new(m, 0) end)
    assert.has_error(function() ipc.cond.attach(m, 0) end)
    os.remove(ro)
    local d1 <close> = assert(ipc.mutex.new(r, 512))
    assert.is_true(d1:lock(1))
    local ok, msg, code = d1:destroy()     -- held: refused, it would stay on the robust list
    assert.is_nil(ok)
    assert.matches("pthread_mutex_destroy", msg)
    assert.equal(ipc.errno.EBUSY, code)
    assert.is_true(d1:unlock())
    assert.is_true(d1:destroy())
    local d2 <close> = assert(ipc.cond.new(r, 576))
    assert.is_true(d2:destroy())
  end)
end)
