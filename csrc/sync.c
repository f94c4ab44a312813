/*
 * sync.c - process-shared pthread mutexes (robust by default) and
 * condition variables placed inside a lipc.region: lipc.mutex, lipc.cond.
 * Blocking waits run in bounded slices because the kernel restarts futex
 * waits after the interpreter's SIGINT handler; between slices a Ctrl-C
 * hook makes the call return so "interrupted!" is raised.
 */
#include "region.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdio.h>
#include <string.h>

/* Longest single wait before looking at Ctrl-C. */
#define SLICE_NS 200000000L

typedef struct lmutex {
  lipc_handle h;
  pthread_mutex_t *mu;    /* inside region */
  lipc_region *region;    /* kept alive in uservalue 1 */
  int held;               /* locks taken through this handle, not yet unlocked */
} lmutex;

typedef struct lcond {
  lipc_handle h;
  pthread_cond_t *cv;
  lipc_region *region;
} lcond;

/* Release a placed object: let go of the region, never destroy the shared
 * object (other processes may use it). */
static int mutex_release(lipc_handle *h, int remove_name) {
  lmutex *m = (lmutex *)h;
  (void)remove_name;
  /* Locks still held through this handle are released first: glibc keeps
   * held robust mutexes on a per-thread list, which must not point into
   * memory that is about to be unmapped.  Only this handle's own locks, and
   * only while this process holds the mutex: a forked child's copy of the
   * parent's count holds nothing, but a lock the child took through the
   * inherited handle is the child's (its main thread's tid is its pid). */
  if (m->mu && m->held > 0 && m->mu->__data.__owner == getpid())
    for (; m->held > 0; m->held--) (void)pthread_mutex_unlock(m->mu);
  if (m->region) lipc_region_unretain(m->region);
  m->region = NULL;
  m->mu = NULL;
  return 0;
}

/* The same for a condition variable. */
static int cond_release(lipc_handle *h, int remove_name) {
  lcond *c = (lcond *)h;
  (void)remove_name;
  if (c->region) lipc_region_unretain(c->region);
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

/* The absolute CLOCK_MONOTONIC end of the next slice (or the deadline). */
static void slice_end(const lipc_deadline *d, struct timespec *abs, int sliced) {
  clock_gettime(CLOCK_MONOTONIC, abs);
  if (!sliced && !d->forever) { *abs = d->end; return; }
  abs->tv_nsec += SLICE_NS;
  if (abs->tv_nsec >= 1000000000L) { abs->tv_sec++; abs->tv_nsec -= 1000000000L; }
  if (!d->forever && (d->end.tv_sec < abs->tv_sec ||
                      (d->end.tv_sec == abs->tv_sec && d->end.tv_nsec < abs->tv_nsec)))
    *abs = d->end;
}

/* Place a mutex at (region 1, offset 2): init when init, else attach. */
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
  if (init) {
    pthread_mutexattr_t a;
    int err = pthread_mutexattr_init(&a);
    if (err) return lipc_error(L, err, "pthread_mutexattr_init", NULL);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (robust) pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    /* error-checking: relocking or unlocking someone else's lock is an
     * error triple, not a deadlock or undefined behaviour */
    pthread_mutexattr_settype(&a, recursive ? PTHREAD_MUTEX_RECURSIVE : PTHREAD_MUTEX_ERRORCHECK);
    err = pthread_mutex_init(at, &a);
    pthread_mutexattr_destroy(&a);
    if (err) return lipc_error(L, err, "pthread_mutex_init", NULL);
  }
  m->mu = at;
  m->region = r;
  lipc_region_retain(r);
  m->h.open = 1;
  return 1;
}

/* ipc.mutex.new(region, offset, {robust = true, recursive = false}). */
static int lmutex_new(lua_State *L) { return mutex_place(L, 1); }
/* ipc.mutex.attach(region, offset): a mutex another process initialised. */
static int lmutex_attach(lua_State *L) { return mutex_place(L, 0); }

/* Push the result of a lock attempt that returned err: true, true +
 * "owner died" (made consistent), or the error triple. */
static int lock_result(lua_State *L, lmutex *m, int err, const char *call, int taken) {
  if (err == 0) { m->held += taken; lua_pushboolean(L, 1); return 1; }
  if (err == EOWNERDEAD) {
    m->held += taken;
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
  int err = pthread_mutex_trylock(m->mu);
  if (err != EBUSY) return lock_result(L, m, err, "pthread_mutex_lock", 1);
  for (;;) {
    struct timespec abs;
    slice_end(&d, &abs, 1);
    err = pthread_mutex_clocklock(m->mu, CLOCK_MONOTONIC, &abs);
    if (err != ETIMEDOUT && err != EINTR) return lock_result(L, m, err, "pthread_mutex_lock", 1);
    if (lipc_interrupted(&d)) return lipc_error(L, EINTR, "pthread_mutex_lock", NULL);
    if (!d.forever && lipc_deadline_expired(&d)) return lipc_timeout(L);
  }
}

/* mu:trylock(): true | false | true, "owner died". */
static int lmutex_trylock(lua_State *L) {
  lmutex *m = lipc_check(L, 1, &mutex_class);
  int err = pthread_mutex_trylock(m->mu);
  if (err == EBUSY) { lua_pushboolean(L, 0); return 1; }
  return lock_result(L, m, err, "pthread_mutex_trylock", 1);
}

/* mu:unlock(): true | error triple (EPERM when not the holder). */
static int lmutex_unlock(lua_State *L) {
  lmutex *m = lipc_check(L, 1, &mutex_class);
  int err = pthread_mutex_unlock(m->mu);
  if (err) return lipc_error(L, err, "pthread_mutex_unlock", NULL);
  if (m->held > 0) m->held--;
  lua_pushboolean(L, 1);
  return 1;
}

/* mu:destroy(): pthread_mutex_destroy, then close mu. */
static int lmutex_destroy(lua_State *L) {
  lmutex *m = lipc_check(L, 1, &mutex_class);
  /* glibc lets a held robust mutex be destroyed; unmapping it later would
   * leave it on the thread's robust list */
  if (m->held > 0) return lipc_error(L, EBUSY, "pthread_mutex_destroy", NULL);
  int err = pthread_mutex_destroy(m->mu);
  if (err) return lipc_error(L, err, "pthread_mutex_destroy", NULL);
  (void)lipc_release(&m->h);
  lua_pushboolean(L, 1);
  return 1;
}

/* Place a condition variable at (region 1, offset 2). */
static int cond_place(lua_State *L, int init) {
  lipc_region *r;
  pthread_cond_t *at = lipc_region_at_rw(L, 1, 2, sizeof(pthread_cond_t), alignof(pthread_cond_t), &r);
  luaL_argcheck(L, lua_isnone(L, 3), 3, "no more arguments expected");
  lcond *c = lipc_new(L, &cond_class, 1);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  if (init) {
    pthread_condattr_t a;
    int err = pthread_condattr_init(&a);
    if (err) return lipc_error(L, err, "pthread_condattr_init", NULL);
    pthread_condattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    err = pthread_cond_init(at, &a);
    pthread_condattr_destroy(&a);
    if (err) return lipc_error(L, err, "pthread_cond_init", NULL);
  }
  c->cv = at;
  c->region = r;
  lipc_region_retain(r);
  c->h.open = 1;
  return 1;
}

/* ipc.cond.new(region, offset): PROCESS_SHARED, CLOCK_MONOTONIC. */
static int lcond_new(lua_State *L) { return cond_place(L, 1); }
/* ipc.cond.attach(region, offset): a cond another process initialised. */
static int lcond_attach(lua_State *L) { return cond_place(L, 0); }

/* cv:wait(mu [, timeout]): true (possibly early, as pthread_cond_wait may
 * wake spuriously) | true, "owner died" | nil, "timeout".  With no timeout
 * one call waits at most one slice (0.2 s) so Ctrl-C is seen; re-waiting
 * inside would lose a signal sent between slices, so it returns true
 * instead: always re-check the condition in a loop. */
static int lcond_wait(lua_State *L) {
  lcond *c = lipc_check(L, 1, &cond_class);
  lmutex *m = lipc_check(L, 2, &mutex_class);
  lipc_deadline d;
  lipc_deadline_init(L, 3, &d);
  struct timespec abs;
  slice_end(&d, &abs, d.forever);
  int err = pthread_cond_clockwait(c->cv, m->mu, CLOCK_MONOTONIC, &abs);
  if (err == ETIMEDOUT) {
    if (!d.forever && lipc_deadline_expired(&d)) return lipc_timeout(L);
    if (lipc_interrupted(&d)) return lipc_error(L, EINTR, "pthread_cond_wait", NULL);
    err = 0;  /* end of a slice: a spurious wake-up */
  }
  return lock_result(L, m, err, "pthread_cond_wait", 0);
}

/* cv:signal(): wake one waiter. */
static int lcond_signal(lua_State *L) {
  lcond *c = lipc_check(L, 1, &cond_class);
  int err = pthread_cond_signal(c->cv);
  if (err) return lipc_error(L, err, "pthread_cond_signal", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* cv:broadcast(): wake every waiter. */
static int lcond_broadcast(lua_State *L) {
  lcond *c = lipc_check(L, 1, &cond_class);
  int err = pthread_cond_broadcast(c->cv);
  if (err) return lipc_error(L, err, "pthread_cond_broadcast", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* cv:destroy(): pthread_cond_destroy, then close cv. */
static int lcond_destroy(lua_State *L) {
  lcond *c = lipc_check(L, 1, &cond_class);
  int err = pthread_cond_destroy(c->cv);
  if (err) return lipc_error(L, err, "pthread_cond_destroy", NULL);
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
  lua_pushinteger(L, (lua_Integer)sizeof(pthread_cond_t));
  lua_setfield(L, -2, "SIZE");
  lua_pop(L, 1);
}
