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

  it("times out without the mutex held (a failed wait never holds it)", function()
    local r <close> = assert(ipc.shm.anonymous(4096))
    local mu <close> = assert(ipc.mutex.new(r, MU))
    local cv <close> = assert(ipc.cond.new(r, CV))
    assert.is_true(mu:lock())
    local t0 = ipc.clock()
    assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { cv:wait(mu, 0.3) })
    assert.is_true(ipc.clock() - t0 >= 0.25)
    assert.equal(ipc.errno.EPERM, select(3, mu:unlock()), "not held after the timeout")
    assert.is_true(mu:lock())
    assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { cv:wait(mu, 0) })
    assert.equal(ipc.errno.EPERM, select(3, mu:unlock()))
    local ok, _, err = cv:wait(mu, 0.1)
    assert.is_nil(ok)
    assert.equal(ipc.errno.EPERM, err)
  end)

  it("returns by its deadline while another process holds the mutex (then without it)", function()
    -- glibc re-takes the mutex at the end of pthread_cond_timedwait with an
    -- untimed lock: this wait returned only when the holder let go
    local r <close> = assert(ipc.shm.anonymous(4096))
    local mu <close> = assert(ipc.mutex.new(r, MU))
    local cv <close> = assert(ipc.cond.new(r, CV))
    local held <close> = assert(ipc.sem.new(r, SEM, 0))
    local go <close> = assert(ipc.sem.new(r, SEM + 64, 0))
    assert.is_true(mu:lock())
    local pid = helper.fork(function()
      assert(mu:lock(20))       -- only once the parent's wait released it
      assert(cv:signal())       -- the parent wakes and must take the mutex back
      held:post()
      go:wait(20)
      assert(mu:unlock())
    end)
    local t0 = ipc.clock()
    assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { cv:wait(mu, 1) })
    local took = ipc.clock() - t0
    assert.is_true(held:wait(20))
    assert.is_true(took < 5, ("returned after %.2f s"):format(took))
    assert.is_false(mu:trylock(), "the child holds it")
    assert.equal(ipc.errno.EPERM, select(3, mu:unlock()))
    go:post()
    join(pid)
    assert.is_true(mu:lock(20))
    assert.is_true(mu:unlock())
  end)

  it("wakes a waiter signalled between two slices (no lost wake-up)", function()
    local r <close> = assert(ipc.shm.anonymous(4096))
    local mu <close> = assert(ipc.mutex.new(r, MU))
    local cv <close> = assert(ipc.cond.new(r, CV))
    r:store(STATE, 0)
    local pid = helper.fork(function()
      for round = 1, 20 do
        assert(mu:lock(20))
        while r:load(STATE) < round do assert(cv:wait(mu, 20)) end
        assert(mu:unlock())
      end
    end)
    local t0 = ipc.clock()
    for round = 1, 20 do
      assert.is_true(mu:lock(20))
      r:store(STATE, round)
      assert.is_true(cv:signal())
      assert.is_true(mu:unlock())
      if round % 5 == 0 then ipc.poll({}, 0.25) end   -- let the child sleep past a slice boundary
    end
    join(pid)
    assert.is_true(ipc.clock() - t0 < 10)
  end)

  it("interoperates with a C program using the same segment (mutex, cond protocol, sem)", function()
    -- the lipc.cond protocol of doc/shm.md: a futex sequence word at +0, a
    -- waiter count at +4, the magic word at +8
    local exe, gcc_out = helper.compile_c([[
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
static void cond_signal(uint32_t *cv) {
  __atomic_add_fetch(&cv[0], 1, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(&cv[1], __ATOMIC_SEQ_CST)) syscall(SYS_futex, &cv[0], FUTEX_WAKE, INT_MAX, 0, 0, 0);
}
static void cond_wait(uint32_t *cv, pthread_mutex_t *mu) {
  uint32_t seq = __atomic_load_n(&cv[0], __ATOMIC_SEQ_CST);
  __atomic_add_fetch(&cv[1], 1, __ATOMIC_SEQ_CST);
  pthread_mutex_unlock(mu);
  syscall(SYS_futex, &cv[0], FUTEX_WAIT, seq, 0, 0, 0);
  __atomic_sub_fetch(&cv[1], 1, __ATOMIC_SEQ_CST);
  pthread_mutex_lock(mu);
}
int main(int argc, char **argv) {
  int fd = shm_open(argv[1], O_RDWR, 0);
  if (fd < 0) return 2;
  unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return 3;
  pthread_mutex_t *mu = (pthread_mutex_t *)(p + 0);
  uint32_t *cv = (uint32_t *)(p + 64);
  sem_t *sem = (sem_t *)(p + 128);
  int64_t *state = (int64_t *)(p + 256);
  if (cv[2] != 0x3156434C) return 6;
  if (pthread_mutex_lock(mu) != 0) return 4;
  __atomic_store_n(state, 42, __ATOMIC_SEQ_CST);
  cond_signal(cv);
  while (__atomic_load_n(state, __ATOMIC_SEQ_CST) != 43) cond_wait(cv, mu);
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
    local p = assert(ipc.exec{ exe, name, stdout = "pipe" })
    finally(function()
      if p:status() == nil then p:kill("KILL") end
      p:wait(10)
      p.stdout:close()
      p:close()
    end)
    while r:load(STATE) ~= 42 do assert.is_true(cv:wait(mu, 20)) end
    r:store(STATE, 43)
    assert.is_true(cv:signal())
    assert.is_true(mu:unlock())
    r:store(STATE + 8, 4711)
    assert.is_true(sem:post())
    assert.equal("4711\n", p.stdout:read("a", 20))
    assert.same({ "exited", 0 }, { p:wait(20) })
    os.remove(exe)
  end)
end)

describe("Ctrl-C", function()
  local cases = {
    { "mutex lock", "local mu = ipc.mutex.new(r, 0); local held = ipc.sem.new(r, 128, 0); " ..
      "local never = ipc.sem.new(r, 192, 0); " ..
      "if ipc.fork() == 0 then mu:lock(); held:post(); never:wait(5); ipc.exit(0) end; " ..
      "assert(held:wait(10)); print('ready'); io.stdout:flush(); mu:lock()" },
    { "mutex lock with a timeout", "local mu = ipc.mutex.new(r, 0); local held = ipc.sem.new(r, 128, 0); " ..
      "local never = ipc.sem.new(r, 192, 0); " ..
      "if ipc.fork() == 0 then mu:lock(); held:post(); never:wait(5); ipc.exit(0) end; " ..
      "assert(held:wait(10)); print('ready'); io.stdout:flush(); mu:lock(30)" },
    { "cond wait", "local mu = ipc.mutex.new(r, 0); local cv = ipc.cond.new(r, 64); assert(mu:lock()); " ..
      "print('ready'); io.stdout:flush(); while true do cv:wait(mu) end" },
    -- glibc's timed cond wait is one uninterrupted call: this ended after 12 s
    { "cond wait with a timeout", "local mu = ipc.mutex.new(r, 0); local cv = ipc.cond.new(r, 64); " ..
      "assert(mu:lock()); print('ready'); io.stdout:flush(); cv:wait(mu, 12)" },
    -- woken, then taking the mutex back from a child that keeps it (until
    -- this process is gone: its pipe end closes); glibc's untimed re-take
    -- never ended
    { "cond wait taking the mutex back", "local mu = ipc.mutex.new(r, 0); local cv = ipc.cond.new(r, 64); " ..
      "local rd, wr = ipc.pipe(); assert(mu:lock()); " ..
      "if ipc.fork() == 0 then wr:close(); assert(mu:lock(20)); cv:signal(); print('ready'); " ..
      "io.stdout:flush(); rd:read(1, 30); ipc.exit(0) end; rd:close(); cv:wait(mu)" },
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
