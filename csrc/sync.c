/*
 * sync.c - process-shared pthread mutexes (robust by default) and
 * condition variables placed inside a lipc.region: lipc.mutex, lipc.cond.
 *
 * Every wait is a try function run by lipc_run (core.h, "the one wait
 * path"): a try takes the lock with pthread_mutex_trylock or looks at the
 * sequence word, and otherwise returns LIPC_AGAIN with the futex word to
 * sleep on; lipc_run sleeps on it in 0.2 s slices (Ctrl-C is seen between
 * them) or, inside a task, yields to the loop, whose futex waiter wakes the
 * task (csrc/task.c).
 *
 * Waiting on a pthread mutex's word follows glibc 2.36's own lock
 * (nptl/pthread_mutex_lock.c, lowlevellock.c): a robust mutex's word is
 * the holder's thread id | FUTEX_WAITERS | FUTEX_OWNER_DIED, and its
 * unlock calls FUTEX_WAKE (1) only when FUTEX_WAITERS is set; a plain
 * (error-checking or recursive) one holds 0 free, 1 taken, 2 taken with
 * waiters, and its unlock wakes one when it held 2.  So a waiter sets
 * FUTEX_WAITERS (or 2) by CAS before it sleeps, and after a wait takes the
 * lock marked again (glibc's waiters do the same: others may still sleep).
 * A priority-inheritance mutex (made by C code) has no such word: a task
 * backs off between trylocks.
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
  int twaits;             /* tasks of twait_pid waiting on the lock word */
  pid_t twait_pid;
} lmutex;

typedef struct lcond {
  lipc_handle h;
  lipc_condvar *cv;
  lipc_region *region;
  lipc_placed *placed;
  int twaits;             /* tasks of twait_pid counted in cv->waiters */
  pid_t twait_pid;
} lcond;

/* glibc's mutex kind bits (nptl/pthreadP.h; not in the public headers). */
#define GLIBC_MUTEX_ROBUST 16
#define GLIBC_MUTEX_PI 32
#define GLIBC_MUTEX_PP 64
#define GLIBC_MUTEX_PSHARED 128

/* Flags in acc[0] of a wait record (a cond wait keeps its phase in the low
 * bits: 1 asleep on the sequence word, 2 taking the mutex back). */
#define W_PHASE 3
#define W_CONTENDED 4   /* this wait marked the mutex word as having waiters */
#define W_PASSED 8      /* this cond wait passed a wake-up on once */
#define W_COUNTED 16    /* this wait counts in its handle's twaits */
#define W_WAITED 32     /* this cond wait slept at least once */

/* Wake up to n waiters sleeping on the futex word w (shared, not private:
 * the waiters are other processes). */
static void futex_wake(_Atomic uint32_t *w, int n) {
  (void)syscall(SYS_futex, w, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* The lock word of a glibc mutex. */
static _Atomic uint32_t *lock_word(pthread_mutex_t *mu) {
  return (_Atomic uint32_t *)&mu->__data.__lock;
}

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
  /* tasks of this process waiting through m: resume them now (they find
   * m closed) */
  if (m->mu && m->twaits > 0 && m->twait_pid == getpid()) lipc_task_forget(m->mu, sizeof *m->mu);
  m->twaits = 0;
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
  /* tasks of this process asleep through c: take their count back and
   * resume them (they find c closed) */
  if (c->cv && c->twaits > 0 && c->twait_pid == getpid()) {
    atomic_fetch_sub(&c->cv->waiters, (uint32_t)c->twaits);
    lipc_task_forget(c->cv, sizeof *c->cv);
  }
  c->twaits = 0;
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

/* One attempt at the mutex of m for the wait w: 0 or EOWNERDEAD (taken),
 * EBUSY (held by another: w says what to wait on), or an errno value.
 * Before it waits it marks the word as having waiters; after a wait it
 * takes the lock marked again (see the top of this file). */
static int mutex_attempt(lmutex *m, lipc_wait *w) {
  pthread_mutex_t *mu = m->mu;
  _Atomic uint32_t *word = lock_word(mu);
  int kind = mu->__data.__kind;
  for (int spin = 0; spin < 100; spin++) {
    int err = pthread_mutex_trylock(mu);
    if (err == 0 || err == EOWNERDEAD) {
      if (w->acc[0] & W_CONTENDED) {
        if (kind & GLIBC_MUTEX_ROBUST) atomic_fetch_or(word, FUTEX_WAITERS);
        else { uint32_t one = 1; atomic_compare_exchange_strong(word, &one, 2); }
      }
      return err;
    }
    if (err != EBUSY) return err;
    /* glibc's trylock of a plain error-checking mutex says EBUSY to its
     * own holder; its lock says EDEADLK (tasks share the thread) */
    if ((kind & 3) == PTHREAD_MUTEX_ERRORCHECK && mu->__data.__owner == gettid()) return EDEADLK;
    w->shared = (kind & GLIBC_MUTEX_PSHARED) != 0;
    if (kind & (GLIBC_MUTEX_PI | GLIBC_MUTEX_PP)) { w->word = NULL; return EBUSY; }  /* back off */
    uint32_t v = atomic_load(word);
    if (kind & GLIBC_MUTEX_ROBUST) {
      if ((v & FUTEX_TID_MASK) == 0) continue;   /* free, or its owner died: try again */
      if (!(v & FUTEX_WAITERS) && !atomic_compare_exchange_strong(word, &v, v | FUTEX_WAITERS)) continue;
      v |= FUTEX_WAITERS;
    } else {
      if (v == 0) continue;
      if (v == 1 && !atomic_compare_exchange_strong(word, &v, 2)) continue;
      v = 2;
    }
    w->acc[0] |= W_CONTENDED;
    w->word = (const uint32_t *)word;
    w->val = v;
    return EBUSY;
  }
  w->word = NULL;   /* the word keeps changing: back off */
  return EBUSY;
}

/* Count (or stop counting) w in m->twaits: m's close wakes the tasks. */
static void mutex_count(lmutex *m, lipc_wait *w, int on) {
  if (on && !(w->acc[0] & W_COUNTED)) {
    if (m->twaits++ == 0) m->twait_pid = getpid();
    w->acc[0] |= W_COUNTED;
  } else if (!on && (w->acc[0] & W_COUNTED)) {
    w->acc[0] &= ~(lua_Integer)W_COUNTED;
    if (m->h.open && m->twaits > 0) m->twaits--;
  }
}

/* A wait for m ends without the lock (timeout, Ctrl-C, cancel): it may have
 * taken the wake-up of an unlock meant for another waiter, so pass one on
 * while the mutex is free, and keep the word marked while it is held. */
static void mutex_pass_on(lmutex *m, lipc_wait *w) {
  if (!(w->acc[0] & W_CONTENDED) || !m->h.open) return;
  w->acc[0] &= ~(lua_Integer)W_CONTENDED;
  _Atomic uint32_t *word = lock_word(m->mu);
  uint32_t v = atomic_load(word);
  if (m->mu->__data.__kind & GLIBC_MUTEX_ROBUST) {
    if ((v & FUTEX_TID_MASK) == 0) futex_wake(word, 1);
    else if (!(v & FUTEX_WAITERS)) atomic_compare_exchange_strong(word, &v, v | FUTEX_WAITERS);
  } else {
    if (v == 0) futex_wake(word, 1);
    else if (v == 1) atomic_compare_exchange_strong(word, &v, 2);
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
  lipc_placed *e = lipc_region_place(L, r, 1, 2, at, sizeof(pthread_mutex_t), LIPC_PLACED_MUTEX, !init);
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

/* One attempt to take m for the wait w (a lock, or the second phase of a
 * cond wait): the result, or LIPC_AGAIN counted as a waiter. */
static int mutex_take(lua_State *L, lmutex *m, lipc_wait *w, const char *call) {
  mutex_count(m, w, 0);
  if (!m->h.open) return lipc_closed_error(L, &mutex_class);
  int err = mutex_attempt(m, w);
  if (err == EBUSY) {
    if (w->word) mutex_count(m, w, 1);
    return LIPC_AGAIN;
  }
  return lock_result(L, m, err, call);
}

/* One try of mu:lock (the mutex at stack index 1). */
static int mutex_try(lua_State *L, lipc_wait *w) {
  return mutex_take(L, w->p, w, "pthread_mutex_lock");
}

/* A lock wait ends without the lock. */
static void mutex_leave(lipc_wait *w) {
  lmutex *m = w->p;
  mutex_count(m, w, 0);
  mutex_pass_on(m, w);
}

/* mu:lock([timeout]): true | true, "owner died" | nil, "timeout". */
static int lmutex_lock(lua_State *L) {
  lmutex *m = lipc_check(L, 1, &mutex_class);
  lipc_wait w;
  lipc_wait_init(L, &w, 2, mutex_try);
  w.p = m;
  w.call = "pthread_mutex_lock";
  w.leave = mutex_leave;
  return lipc_run(L, &w);
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

/* Place a condition variable at (region 1, offset 2): initialise it when
 * init, else attach one (it must carry the magic word). */
static int cond_place(lua_State *L, int init) {
  lipc_region *r;
  lipc_condvar *at = lipc_region_at_rw(L, 1, 2, sizeof(lipc_condvar), 8, &r);
  luaL_argcheck(L, lua_isnone(L, 3), 3, "no more arguments expected");
  lcond *c = lipc_new(L, &cond_class, 1);
  if (!init && atomic_load(&at->magic) != COND_MAGIC) {
    char what[64];
    snprintf(what, sizeof what, "offset %td (no lipc.cond there)", (unsigned char *)at - r->addr);
    return lipc_error(L, EINVAL, "cond attach", what);
  }
  lipc_placed *e = lipc_region_place(L, r, 1, 2, at, sizeof(lipc_condvar), LIPC_PLACED_COND, !init);
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

/* Count (or stop counting) w in cv->waiters and c->twaits. */
static void cond_count(lcond *c, lipc_wait *w, int on) {
  if (on) {
    atomic_fetch_add(&c->cv->waiters, 1);
    if (c->twaits++ == 0) c->twait_pid = getpid();
    w->acc[0] |= W_COUNTED;
  } else if (w->acc[0] & W_COUNTED) {
    w->acc[0] &= ~(lua_Integer)W_COUNTED;
    if (!c->h.open) return;   /* its close took the count back */
    atomic_fetch_sub(&c->cv->waiters, 1);
    c->twaits--;
  }
}

/* One try of cv:wait (the cond at stack index 1, the mutex at 2).  Phase
 * 1: asleep on the sequence word until it moves past the ticket (acc[1]),
 * read while the mutex was held; phase 2: take the mutex back, as
 * mu:lock does, against the same deadline. */
static int cond_try(lua_State *L, lipc_wait *w) {
  lcond *c = w->p;
  lmutex *m = lua_touserdata(L, 2);
  if ((w->acc[0] & W_PHASE) == 1) {
    if (!c->h.open) { w->acc[0] &= ~(lua_Integer)W_COUNTED; return lipc_closed_error(L, &cond_class); }
    uint32_t old = (uint32_t)w->acc[1];
    if (atomic_load(&c->cv->seq) == old) {
      if ((w->acc[0] & W_WAITED) && !(w->acc[0] & W_PASSED)) {
        /* woken by a signal that came before our ticket, meant for an
         * older waiter still asleep: pass it on (once, so waiters never
         * ping-pong) */
        futex_wake(&c->cv->seq, 1);
        w->acc[0] |= W_PASSED;
      }
      w->word = (const uint32_t *)&c->cv->seq;
      w->val = old;
      w->shared = 1;
      w->acc[0] |= W_WAITED;
      return LIPC_AGAIN;
    }
    cond_count(c, w, 0);
    w->acc[0] = (w->acc[0] & ~(lua_Integer)W_PHASE) | 2;
    w->acc[1] = (lua_Integer)(intptr_t)m;   /* for cond_leave */
    w->tries = 0;
  }
  /* phase 2 */
  return mutex_take(L, m, w, "pthread_cond_wait");
}

/* A cond wait ends without the mutex (timeout, Ctrl-C, cancel). */
static void cond_leave(lipc_wait *w) {
  lcond *c = w->p;
  if ((w->acc[0] & W_PHASE) == 1) {
    int counted = (w->acc[0] & W_COUNTED) && c->h.open;
    uint32_t old = (uint32_t)w->acc[1];
    cond_count(c, w, 0);
    /* a signal came since the ticket: its wake-up may have been ours */
    if (counted && atomic_load(&c->cv->seq) != old) futex_wake(&c->cv->seq, 1);
  } else if ((w->acc[0] & W_PHASE) == 2) {
    lmutex *m = (lmutex *)(intptr_t)w->acc[1];
    mutex_count(m, w, 0);
    mutex_pass_on(m, w);
  }
}

/* cv:wait(mu [, timeout]): true | true, "owner died" (mu held again) |
 * nil, "timeout", ETIMEDOUT | an error triple (mu NOT held: the deadline
 * bounds the re-take too).  Ctrl-C raises "interrupted!" with mu not held. */
static int lcond_wait(lua_State *L) {
  lcond *c = lipc_check(L, 1, &cond_class);
  lmutex *m = lipc_check(L, 2, &mutex_class);
  lipc_wait w;
  lipc_wait_init(L, &w, 3, cond_try);
  lipc_condvar *cv = c->cv;
  pthread_mutex_t *mu = m->mu;
  /* a recursive mutex locked more than once would stay held while we sleep */
  if ((mu->__data.__kind & 3) == PTHREAD_MUTEX_RECURSIVE_NP && mu->__data.__count > 1 &&
      mu->__data.__owner == gettid())
    return lipc_error(L, EDEADLK, "pthread_cond_wait", "(recursive mutex locked more than once)");
  /* the ticket is read while mu is held: a signal after the unlock moves it */
  uint32_t old = atomic_load(&cv->seq);
  w.p = c;
  w.call = "pthread_cond_wait";
  w.leave = cond_leave;
  w.acc[1] = old;
  cond_count(c, &w, 1);
  int err = pthread_mutex_unlock(mu);
  if (err) {
    cond_count(c, &w, 0);
    return lipc_error(L, err, "pthread_cond_wait", NULL);
  }
  if (m->placed->held > 0) m->placed->held--;
  w.acc[0] |= 1;
  return lipc_run(L, &w);
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

/* ---- ipc.poll's probe (csrc/ready.h) ---------------------------------- */

#include "ready.h"

int lipc_mutex_ready(lipc_handle *h) {
  /* plain kinds: 0 free, 1 or 2 held; robust and PI kinds: the owner's
   * tid (0 when free, or when its owner died: lock says EOWNERDEAD) */
  return (atomic_load(lock_word(((lmutex *)h)->mu)) & FUTEX_TID_MASK) == 0;
}
