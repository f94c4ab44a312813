/*
 * sync.c - process-shared pthread mutexes (robust by default) and
 * condition variables placed inside a lipc.region: lipc.mutex, lipc.cond.
 *
 * Every wait is "try, then wait in bounded slices against one
 * lipc_deadline": glibc retries its futex waits after the interpreter's
 * SIGINT handler, so between slices a Ctrl-C hook makes the call return and
 * "interrupted!" is raised.
 *
 * A lipc.cond is not a pthread_cond_t: glibc re-takes the mutex at the end
 * of pthread_cond_*wait with an untimed lock, which no timeout and no
 * Ctrl-C can end while another process holds the mutex.  It is a futex
 * sequence word next to a waiter count (layout: doc/shm.md); the mutex is
 * released and re-taken here, with the same bounded lock as mu:lock.
 */
#include "region.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Longest single wait before looking at Ctrl-C. */
#define SLICE_NS 200000000L

/* A lipc.cond in shared memory (ipc.cond.SIZE bytes, 8-aligned). */
typedef struct lipc_condvar {
  _Atomic uint32_t seq;       /* futex word: bumped by every signal and broadcast */
  _Atomic uint32_t waiters;   /* callers inside wait: signal skips FUTEX_WAKE at 0 */
  _Atomic uint32_t magic;     /* COND_MAGIC once initialised */
  uint32_t reserved;          /* 0 */
} lipc_condvar;

#define COND_MAGIC 0x3156434Cu  /* "LCV1" little-endian */

typedef struct lmutex {
  lipc_handle h;
  pthread_mutex_t *mu;    /* inside region */
  lipc_region *region;    /* kept alive in uservalue 1 */
  lipc_placed *placed;    /* its registry entry: locks this process holds */
} lmutex;

typedef struct lcond {
  lipc_handle h;
  lipc_condvar *cv;
  lipc_region *region;
  lipc_placed *placed;
} lcond;

/* The last handle of a mutex in this region is going: unlock what this
 * thread still holds through lipc.  glibc keeps held robust mutexes on a
 * per-thread list linked through the mutexes themselves; when a lock
 * cannot be released (its bytes were overwritten by someone else), the
 * region stays mapped so the list never points into unmapped memory.  A
 * forked child's copy of the parent's count holds nothing (glibc empties
 * the child's list), hence the thread id check. */
static void release_held(lmutex *m) {
  lipc_placed *e = m->placed;
  if (e->held <= 0) return;
  if (e->holder == gettid()) {
    while (e->held > 0 && m->mu->__data.__owner == e->holder && pthread_mutex_unlock(m->mu) == 0)
      e->held--;
    if (e->held > 0) lipc_region_pin(m->region);
  }
  e->held = 0;
}

/* Release a placed mutex: let go of the region, never destroy the shared
 * object (other processes may use it). */
static int mutex_release(lipc_handle *h, int remove_name) {
  lmutex *m = (lmutex *)h;
  (void)remove_name;
  if (m->placed) {
    if (m->placed->refs == 1) release_held(m);
    lipc_region_unplace(m->region, m->placed);
  }
  m->placed = NULL;
  m->region = NULL;
  m->mu = NULL;
  return 0;
}

/* The same for a condition variable. */
static int cond_release(lipc_handle *h, int remove_name) {
  lcond *c = (lcond *)h;
  (void)remove_name;
  if (c->placed) lipc_region_unplace(c->region, c->placed);
  c->placed = NULL;
  c->region = NULL;
  c->cv = NULL;
  return 0;
}

/* __tostring identity: "offset 64". */
static void mutex_describe(lipc_handle *h, luaL_Buffer *b) {
  lmutex *m = (lmutex *)h;
  char tmp[48];
  snprintf(tmp, sizeof tmp, "offset %td", (unsigned char *)m->mu - m->region->addr);
  luaL_addstring(b, tmp);
}

/* __tostring identity of a condition variable. */
static void cond_describe(lipc_handle *h, luaL_Buffer *b) {
  lcond *c = (lcond *)h;
  char tmp[48];
  snprintf(tmp, sizeof tmp, "offset %td", (unsigned char *)c->cv - c->region->addr);
  luaL_addstring(b, tmp);
}

/* ipc.audit(): the offset inside the region (no name, no descriptor). */
static void mutex_audit(lua_State *L, lipc_handle *h) {
  lmutex *m = (lmutex *)h;
  lua_pushinteger(L, (lua_Integer)((unsigned char *)m->mu - m->region->addr));
  lua_setfield(L, -2, "offset");
}

/* ipc.audit() for a condition variable. */
static void cond_audit(lua_State *L, lipc_handle *h) {
  lcond *c = (lcond *)h;
  lua_pushinteger(L, (lua_Integer)((unsigned char *)c->cv - c->region->addr));
  lua_setfield(L, -2, "offset");
}

static const lipc_class mutex_class = {
  "lipc.mutex", "mutex", sizeof(lmutex), mutex_release, mutex_describe, mutex_audit, 0
};
static const lipc_class cond_class = {
  "lipc.cond", "cond", sizeof(lcond), cond_release, cond_describe, cond_audit, 0
};

static const char *const MUTEX_OPTS[] = { "robust", "recursive", NULL };

/* The absolute CLOCK_MONOTONIC end of the next slice: one slice from now,
 * or the deadline when that comes first. */
static void slice_end(const lipc_deadline *d, struct timespec *abs) {
  clock_gettime(CLOCK_MONOTONIC, abs);
  abs->tv_nsec += SLICE_NS;
  if (abs->tv_nsec >= 1000000000L) { abs->tv_sec++; abs->tv_nsec -= 1000000000L; }
  if (!d->forever && (d->end.tv_sec < abs->tv_sec ||
                      (d->end.tv_sec == abs->tv_sec && d->end.tv_nsec < abs->tv_nsec)))
    *abs = d->end;
}

/* Take the mutex before the deadline: 0, EOWNERDEAD (taken), ETIMEDOUT,
 * EINTR (Ctrl-C) or another errno.  Bounded: glibc's timed lock ends each
 * slice, whoever holds the mutex. */
static int mutex_take(pthread_mutex_t *mu, lipc_deadline *d) {
  int err = pthread_mutex_trylock(mu);
  if (err != EBUSY) return err;
  for (;;) {
    if (lipc_interrupted(d)) return EINTR;
    if (!d->forever && lipc_deadline_expired(d)) return ETIMEDOUT;
    struct timespec abs;
    slice_end(d, &abs);
    err = pthread_mutex_clocklock(mu, CLOCK_MONOTONIC, &abs);
    if (err != ETIMEDOUT && err != EINTR) return err;
  }
}

/* Count a lock this thread just took (glibc recorded its thread id). */
static void note_locked(lmutex *m) {
  lipc_placed *e = m->placed;
  pid_t me = m->mu->__data.__owner;
  if (me == 0) me = gettid();
  if (e->holder != me) {  /* counts inherited from the parent are not ours */
    e->holder = me;
    e->held = 0;
  }
  e->held++;
}

/* Place a mutex at (region 1, offset 2): init when init, else attach.
 * Raises when the bytes hold another live object of this process. */
static int mutex_place(lua_State *L, int init) {
  lipc_region *r;
  pthread_mutex_t *at = lipc_region_at_rw(L, 1, 2, sizeof(pthread_mutex_t), alignof(pthread_mutex_t), &r);
  int robust = 1, recursive = 0;
  if (init) {
    lipc_checkoptions(L, 3, MUTEX_OPTS);
    robust = lipc_optbool(L, 3, "robust", 1);
    recursive = lipc_optbool(L, 3, "recursive", 0);
  } else {
    luaL_argcheck(L, lua_isnone(L, 3), 3, "attach takes no options (the mutex exists)");
  }
  lmutex *m = lipc_new(L, &mutex_class, 1);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);  /* the region stays mapped while m lives */
  lipc_placed *e = lipc_region_place(L, r, 2, at, sizeof(pthread_mutex_t), LIPC_PLACED_MUTEX, !init);
  if (e == NULL) return lipc_error(L, ENOMEM, init ? "pthread_mutex_init" : "mutex attach", NULL);
  m->mu = at;
  m->region = r;
  m->placed = e;
  m->h.open = 1;  /* from here a failure releases the registration */
  if (init) {
    /* this thread holds it (through another mapping of the same memory):
     * re-initialising would leave it on glibc's robust list */
    if (at->__data.__owner == gettid()) {
      (void)lipc_release(&m->h);
      return lipc_error(L, EBUSY, "pthread_mutex_init", NULL);
    }
    pthread_mutexattr_t a;
    int err = pthread_mutexattr_init(&a);
    if (err == 0) {
      pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
      if (robust) pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
      /* error-checking: relocking or unlocking someone else's lock is an
       * error triple, not a deadlock or undefined behaviour */
      pthread_mutexattr_settype(&a, recursive ? PTHREAD_MUTEX_RECURSIVE : PTHREAD_MUTEX_ERRORCHECK);
      err = pthread_mutex_init(at, &a);
      pthread_mutexattr_destroy(&a);
    }
    if (err) {
      (void)lipc_release(&m->h);
      return lipc_error(L, err, "pthread_mutex_init", NULL);
    }
  }
  return 1;
}

/* ipc.mutex.new(region, offset, {robust = true, recursive = false}). */
static int lmutex_new(lua_State *L) { return mutex_place(L, 1); }
/* ipc.mutex.attach(region, offset): a mutex another process initialised. */
static int lmutex_attach(lua_State *L) { return mutex_place(L, 0); }

/* Push the result of a lock attempt that returned err: true, true +
 * "owner died" (made consistent), or the error triple ("timeout" for
 * ETIMEDOUT). */
static int lock_result(lua_State *L, lmutex *m, int err, const char *call) {
  if (err == 0) { note_locked(m); lua_pushboolean(L, 1); return 1; }
  if (err == EOWNERDEAD) {
    note_locked(m);
    int e2 = pthread_mutex_consistent(m->mu);
    if (e2) return lipc_error(L, e2, "pthread_mutex_consistent", NULL);
    lua_pushboolean(L, 1);
    lua_pushliteral(L, "owner died");
    return 2;
  }
  return lipc_fail(L, err, call, NULL);
}

/* mu:lock([timeout]): true | true, "owner died" | nil, "timeout". */
static int lmutex_lock(lua_State *L) {
  lmutex *m = lipc_check(L, 1, &mutex_class);
  lipc_deadline d;
  lipc_deadline_init(L, 2, &d);
  return lock_result(L, m, mutex_take(m->mu, &d), "pthread_mutex_lock");
}

/* mu:trylock(): true | false | true, "owner died". */
static int lmutex_trylock(lua_State *L) {
  lmutex *m = lipc_check(L, 1, &mutex_class);
  int err = pthread_mutex_trylock(m->mu);
  if (err == EBUSY) { lua_pushboolean(L, 0); return 1; }
  return lock_result(L, m, err, "pthread_mutex_trylock");
}

/* mu:unlock(): true | error triple (EPERM when not the holder). */
static int lmutex_unlock(lua_State *L) {
  lmutex *m = lipc_check(L, 1, &mutex_class);
  int err = pthread_mutex_unlock(m->mu);
  if (err) return lipc_error(L, err, "pthread_mutex_unlock", NULL);
  if (m->placed->held > 0) m->placed->held--;
  lua_pushboolean(L, 1);
  return 1;
}

/* mu:destroy(): pthread_mutex_destroy, then close mu; EBUSY while anyone
 * holds it. */
static int lmutex_destroy(lua_State *L) {
  lmutex *m = lipc_check(L, 1, &mutex_class);
  /* glibc lets a held robust mutex be destroyed: the holder's robust list
   * would keep it, and its unlock would fail */
  if (m->placed->held > 0 || (m->mu->__data.__lock & FUTEX_TID_MASK) != 0)
    return lipc_error(L, EBUSY, "pthread_mutex_destroy", NULL);
  int err = pthread_mutex_destroy(m->mu);
  if (err) return lipc_error(L, err, "pthread_mutex_destroy", NULL);
  (void)lipc_release(&m->h);
  lua_pushboolean(L, 1);
  return 1;
}

/* Wake up to n waiters sleeping on the futex word w (shared, not private:
 * the waiters are other processes). */
static void futex_wake(_Atomic uint32_t *w, int n) {
  (void)syscall(SYS_futex, w, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* Place a condition variable at (region 1, offset 2): initialise it when
 * init, else attach one (it must carry the magic word). */
static int cond_place(lua_State *L, int init) {
  lipc_region *r;
  lipc_condvar *at = lipc_region_at_rw(L, 1, 2, sizeof(lipc_condvar), 8, &r);
  luaL_argcheck(L, lua_isnone(L, 3), 3, "no more arguments expected");
  lcond *c = lipc_new(L, &cond_class, 1);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  if (!init && atomic_load(&at->magic) != COND_MAGIC) {
    char what[64];
    snprintf(what, sizeof what, "offset %td (no lipc.cond there)", (unsigned char *)at - r->addr);
    return lipc_error(L, EINVAL, "cond attach", what);
  }
  lipc_placed *e = lipc_region_place(L, r, 2, at, sizeof(lipc_condvar), LIPC_PLACED_COND, !init);
  if (e == NULL) return lipc_error(L, ENOMEM, init ? "cond init" : "cond attach", NULL);
  if (init) {
    atomic_store(&at->waiters, 0);
    at->reserved = 0;
    atomic_fetch_add(&at->seq, 1);  /* anyone still asleep on old bytes wakes at its next slice */
    atomic_store(&at->magic, COND_MAGIC);
  }
  c->cv = at;
  c->region = r;
  c->placed = e;
  c->h.open = 1;
  return 1;
}

/* ipc.cond.new(region, offset): a lipc.cond, initialised. */
static int lcond_new(lua_State *L) { return cond_place(L, 1); }
/* ipc.cond.attach(region, offset): a cond another process initialised. */
static int lcond_attach(lua_State *L) { return cond_place(L, 0); }

/* Sleep until the sequence word moves past old: 0, ETIMEDOUT or EINTR
 * (Ctrl-C).  Slices are lossless: a signal between two of them has moved
 * the word, and the next futex wait returns at once. */
static int cond_sleep(lipc_condvar *cv, uint32_t old, lipc_deadline *d) {
  int passed = 0;
  for (;;) {
    if (atomic_load(&cv->seq) != old) return 0;
    if (lipc_interrupted(d)) return EINTR;
    if (!d->forever && lipc_deadline_expired(d)) return ETIMEDOUT;
    struct timespec abs;
    slice_end(d, &abs);
    long rc = syscall(SYS_futex, &cv->seq, FUTEX_WAIT_BITSET, old, &abs, NULL, FUTEX_BITSET_MATCH_ANY);
    if (rc == 0 && atomic_load(&cv->seq) == old && !passed) {
      /* woken by a signal that came before our ticket, meant for an older
       * waiter still asleep: pass it on (once, so waiters never ping-pong) */
      futex_wake(&cv->seq, 1);
      passed = 1;
    }
  }
}

/* cv:wait(mu [, timeout]): true | true, "owner died" (mu held again) |
 * nil, "timeout", ETIMEDOUT | an error triple (mu NOT held: the deadline
 * bounds the re-take too).  Ctrl-C raises "interrupted!" with mu not held. */
static int lcond_wait(lua_State *L) {
  lcond *c = lipc_check(L, 1, &cond_class);
  lmutex *m = lipc_check(L, 2, &mutex_class);
  lipc_deadline d;
  lipc_deadline_init(L, 3, &d);
  lipc_condvar *cv = c->cv;
  pthread_mutex_t *mu = m->mu;
  /* a recursive mutex locked more than once would stay held while we sleep */
  if ((mu->__data.__kind & 3) == PTHREAD_MUTEX_RECURSIVE_NP && mu->__data.__count > 1 &&
      mu->__data.__owner == gettid())
    return lipc_error(L, EDEADLK, "pthread_cond_wait", "(recursive mutex locked more than once)");
  /* the ticket is read while mu is held: a signal after the unlock moves it */
  uint32_t old = atomic_load(&cv->seq);
  atomic_fetch_add(&cv->waiters, 1);
  int err = pthread_mutex_unlock(mu);
  if (err) {
    atomic_fetch_sub(&cv->waiters, 1);
    return lipc_error(L, err, "pthread_cond_wait", NULL);
  }
  if (m->placed->held > 0) m->placed->held--;
  err = cond_sleep(cv, old, &d);
  atomic_fetch_sub(&cv->waiters, 1);
  if (err == 0) err = mutex_take(mu, &d);
  if (err == EINTR) return lipc_error(L, EINTR, "pthread_cond_wait", NULL);
  return lock_result(L, m, err, "pthread_cond_wait");
}

/* Bump the sequence word and wake up to n waiters. */
static int cond_wake(lua_State *L, int n) {
  lcond *c = lipc_check(L, 1, &cond_class);
  atomic_fetch_add(&c->cv->seq, 1);
  if (atomic_load(&c->cv->waiters) > 0) futex_wake(&c->cv->seq, n);
  lua_pushboolean(L, 1);
  return 1;
}

/* cv:signal(): wake one waiter. */
static int lcond_signal(lua_State *L) { return cond_wake(L, 1); }

/* cv:broadcast(): wake every waiter. */
static int lcond_broadcast(lua_State *L) { return cond_wake(L, INT_MAX); }

/* cv:destroy(): clear the magic word, wake every waiter, close cv. */
static int lcond_destroy(lua_State *L) {
  lcond *c = lipc_check(L, 1, &cond_class);
  atomic_store(&c->cv->magic, 0);
  atomic_fetch_add(&c->cv->seq, 1);
  futex_wake(&c->cv->seq, INT_MAX);
  (void)lipc_release(&c->h);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg mutex_methods[] = {
  {"lock", lmutex_lock},
  {"trylock", lmutex_trylock},
  {"unlock", lmutex_unlock},
  {"destroy", lmutex_destroy},
  {NULL, NULL}
};

static const luaL_Reg cond_methods[] = {
  {"wait", lcond_wait},
  {"signal", lcond_signal},
  {"broadcast", lcond_broadcast},
  {"destroy", lcond_destroy},
  {NULL, NULL}
};

void lipc_open_sync(lua_State *L) {
  lipc_register(L, &mutex_class, mutex_methods);
  lipc_register(L, &cond_class, cond_methods);
  lipc_subtable(L, -1, "mutex");
  lua_pushcfunction(L, lmutex_new);
  lua_setfield(L, -2, "new");
  lua_pushcfunction(L, lmutex_attach);
  lua_setfield(L, -2, "attach");
  lua_pushinteger(L, (lua_Integer)sizeof(pthread_mutex_t));
  lua_setfield(L, -2, "SIZE");
  lua_pop(L, 1);
  lipc_subtable(L, -1, "cond");
  lua_pushcfunction(L, lcond_new);
  lua_setfield(L, -2, "new");
  lua_pushcfunction(L, lcond_attach);
  lua_setfield(L, -2, "attach");
  lua_pushinteger(L, (lua_Integer)sizeof(lipc_condvar));
  lua_setfield(L, -2, "SIZE");
  lua_pop(L, 1);
}
