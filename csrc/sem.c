/*
 * sem.c - semaphores: POSIX named (sem_open) and unnamed process-shared
 * ones living in a lipc.region (sem_init pshared=1), as lipc.sem; System V
 * semaphore sets (semget/semop/semtimedop/semctl) as lipc.semset.
 *
 * Every wait is a try function run by lipc_run (core.h, "the one wait
 * path").  Outside a task, s:wait sleeps in sem_clockwait and set:op in
 * semtimedop, for at most 0.2 s at a time (a Ctrl-C that came just before
 * the call is then seen within a slice).  Inside a task, s:wait registers
 * as a waiter in glibc's semaphore word and yields on its futex word (the
 * loop's futex waiter wakes the task: csrc/task.c); set:op tries with
 * IPC_NOWAIT and backs off (System V has no word to wait on).
 */
#include "region.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <semaphore.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A name for sem_open: glibc adds "sem." in /dev/shm, so 4 bytes less. */
#define SEM_NAME_MAX (NAME_MAX - 4 + 1)

/* The longest sleep of a blocking call before it looks at Ctrl-C again. */
#define SEM_SLICE_NS 200000000L

/* A task waits on a POSIX semaphore the way glibc's own sem_wait does
 * (nptl/sem_waitcommon.c, __new_sem_wait_slow, glibc 2.36 with 64-bit
 * atomics): sem_t starts with struct new_sem { uint64_t data; int private;
 * int pad; }, data holding the value in its low 32 bits (the futex word,
 * first in memory on little-endian) and the number of waiters in its high
 * 32 bits.  sem_post adds 1 to the value and calls FUTEX_WAKE (1 waiter,
 * shared for a process-shared or named semaphore) only when the waiter
 * count it replaced was nonzero; so a waiter adds 1 << 32 to data before
 * it sleeps (FUTEX_WAIT on the value word while it holds 0) and subtracts
 * it after.  Elsewhere (another C library, another layout) a task backs
 * off between sem_trywait calls instead. */
#if defined(__GLIBC__) && __SIZEOF_POINTER__ == 8 && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SEM_FUTEX 1
typedef struct glibc_sem {
  _Atomic uint64_t data;   /* value (low 32 bits), waiters (high 32 bits) */
  int private;
  int pad;
} glibc_sem;
_Static_assert(sizeof(glibc_sem) <= sizeof(sem_t), "glibc's struct new_sem fits sem_t");
#define SEM_WAITER ((uint64_t)1 << 32)
#endif

typedef struct lsem {
  lipc_handle h;
  sem_t *sem;             /* sem_open's mapping, or a place inside region */
  lipc_region *region;    /* unnamed: the region (kept alive in uservalue 1) */
  lipc_placed *placed;    /* unnamed: its entry in the region's registry */
  int twaits;             /* waiters that tasks registered through this handle */
  pid_t twait_pid;        /* the process that registered them */
  dev_t dev;              /* named, owned: the file glibc made for it */
  ino_t ino;              /* (0: not known; then close unlinks by name) */
  char name[SEM_NAME_MAX + 1];
} lsem;

/* The file glibc keeps a named semaphore in: /dev/shm/sem.<name>. */
static int sem_stat(const char *name, struct stat *st) {
  char path[SEM_NAME_MAX + 16];
  snprintf(path, sizeof path, "/dev/shm/sem.%s", name + 1);
  return lstat(path, st);
}

/* Wake up to n sleepers on a shared futex word. */
static void sem_futex_wake(void *word, int n) {
  (void)syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* Closing s while tasks of this process wait through it: take their
 * waiter registrations back and have the loop resume them (they find s
 * closed) now rather than at their deadline. */
static void sem_drop_waits(lsem *s) {
  if (s->twaits <= 0 || s->twait_pid != getpid()) { s->twaits = 0; return; }
#ifdef SEM_FUTEX
  atomic_fetch_sub(&((glibc_sem *)s->sem)->data, (uint64_t)s->twaits * SEM_WAITER);
#endif
  lipc_task_forget(s->sem, sizeof(sem_t));
  s->twaits = 0;
}

/* Release: sem_close a named one (unlink when owned); an unnamed one
 * lets go of its region and never destroys the shared sem_t. */
static int sem_release(lipc_handle *h, int remove_name) {
  lsem *s = (lsem *)h;
  int err = 0;
  if (s->sem) sem_drop_waits(s);
  if (s->region) {
    lipc_region_unplace(s->region, s->placed);
    s->region = NULL;
    s->placed = NULL;
  } else if (s->sem) {
    if (sem_close(s->sem) != 0) err = errno;
    /* the owner removes the name only while it still names this
     * semaphore: not one made again under it after an unlink */
    struct stat st;
    int same = s->ino == 0 || (sem_stat(s->name, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino);
    if (remove_name && same && sem_unlink(s->name) != 0 && errno != ENOENT && err == 0) err = errno;
  }
  s->sem = NULL;
  return err;
}

/* __tostring identity. */
static void sem_describe(lipc_handle *h, luaL_Buffer *b) {
  lsem *s = (lsem *)h;
  if (s->region) {
    char tmp[64];
    snprintf(tmp, sizeof tmp, "unnamed, offset %td", (unsigned char *)s->sem - s->region->addr);
    luaL_addstring(b, tmp);
  } else {
    luaL_addstring(b, s->name);
  }
}

/* ipc.audit() identity. */
static void sem_audit(lua_State *L, lipc_handle *h) {
  lsem *s = (lsem *)h;
  if (!s->region) {
    lua_pushstring(L, s->name);
    lua_setfield(L, -2, "name");
  } else {
    lua_pushinteger(L, (lua_Integer)((unsigned char *)s->sem - s->region->addr));
    lua_setfield(L, -2, "offset");
  }
}

static const lipc_class sem_class = {
  "lipc.sem", "sem", sizeof(lsem), sem_release, sem_describe, sem_audit, 0
};

static const char *const SEM_OPTS[] = { "create", "excl", "value", "mode", "persist", NULL };

/* ipc.sem.open([name], opts): a POSIX named semaphore. */
static int lsem_open(lua_State *L) {
  int oidx = 2;
  if (lua_istable(L, 1) && lua_isnone(L, 2)) oidx = 1;
  const char *name = NULL;
  if (oidx == 2 && !lua_isnil(L, 1)) name = lipc_checkposixname(L, 1, SEM_NAME_MAX);
  lipc_checkoptions(L, oidx, SEM_OPTS);
  int create = lipc_optbool(L, oidx, "create", name == NULL);
  int excl = lipc_optbool(L, oidx, "excl", 0);
  int persist = lipc_optbool(L, oidx, "persist", 0);
  mode_t mode = lipc_optmode(L, oidx, "mode", 0600);
  unsigned value = (unsigned)lipc_optint(L, oidx, "value", 0, 0, SEM_VALUE_MAX);
  if (name == NULL && !create) luaL_argerror(L, oidx, "a generated name needs create = true");

  lsem *s = lipc_new(L, &sem_class, 0);
  s->h.persist = (unsigned char)persist;
  if (name) snprintf(s->name, sizeof s->name, "%s", name);
  else lipc_genname(s->name, sizeof s->name, "/", "");
  sem_t *p;
  int tries = 0;
  for (;;) {
    if (create) {
      p = sem_open(s->name, O_CREAT | O_EXCL, mode, value);
      if (p != SEM_FAILED) {
        struct stat st;
        s->h.owns = 1;
        if (sem_stat(s->name, &st) == 0) { s->dev = st.st_dev; s->ino = st.st_ino; }
        break;
      }
      if (errno == EEXIST && name == NULL && ++tries < 100) {  /* a leftover: another name */
        lipc_genname(s->name, sizeof s->name, "/", "");
        continue;
      }
      if (errno != EEXIST || excl || name == NULL) return lipc_error(L, errno, "sem_open", s->name);
    }
    p = sem_open(s->name, 0);
    if (p != SEM_FAILED) break;
    if (errno != ENOENT || !create) return lipc_error(L, errno, "sem_open", s->name);
  }
  s->sem = p;
  s->h.open = 1;
  return 1;
}

/* ipc.sem.unlink(name): remove a named semaphore. */
static int lsem_unlink_name(lua_State *L) {
  const char *name = lipc_checkposixname(L, 1, SEM_NAME_MAX);
  if (sem_unlink(name) != 0) return lipc_error(L, errno, "sem_unlink", name);
  lua_pushboolean(L, 1);
  return 1;
}

/* A lipc.sem placed at the offset (argument 2) of the region (argument 1);
 * initialised with value (argument 3) when init is set.  Raises when the
 * bytes hold another live object of this process (attach may join a
 * semaphore already there). */
static int place(lua_State *L, int init) {
  lipc_region *r;
  sem_t *at = lipc_region_at_rw(L, 1, 2, sizeof(sem_t), alignof(sem_t), &r);
  unsigned value = init ? (unsigned)lipc_optrange(L, 3, 0, 0, SEM_VALUE_MAX) : 0;
  lsem *s = lipc_new(L, &sem_class, 1);
  lipc_placed *e = lipc_region_place(L, r, 1, 2, at, sizeof(sem_t), LIPC_PLACED_SEM, !init);
  if (e == NULL) return lipc_error(L, ENOMEM, init ? "sem_init" : "sem attach", NULL);
  s->sem = at;
  s->region = r;
  s->placed = e;
  s->h.open = 1;  /* from here a failure releases the registration */
  if (init && sem_init(at, 1, value) != 0) {
    int err = errno;
    (void)lipc_release(&s->h);
    return lipc_error(L, err, "sem_init", NULL);
  }
  return 1;
}

/* ipc.sem.new(region, offset, value): sem_init(pshared = 1) in place. */
static int lsem_new(lua_State *L) {
  return place(L, 1);
}

/* ipc.sem.attach(region, offset): use a sem_t another process initialised. */
static int lsem_attach(lua_State *L) {
  luaL_argcheck(L, lua_gettop(L) <= 2, 3, "attach takes no value (the semaphore exists)");
  return place(L, 0);
}

/* The open lipc.sem at 1 for the hot methods. */
static lsem *fast_sem(lua_State *L) { return lipc_check(L, 1, &sem_class); }

/* 0 when an unnamed semaphore's bytes cannot be a sem_t: glibc's flag word
 * after the 64-bit value (offset 8 on 64-bit) is its futex flag, 128 for a
 * process-shared one (LLL_SHARED) or 0; anything else (bytes sem_init never
 * wrote, or overwritten) makes its futex calls fail in a way glibc treats
 * as fatal (abort). */
static int sem_sane(const lsem *s) {
#if defined(__GLIBC__) && UINTPTR_MAX == UINT64_MAX
  if (s->region) {
    int flag;
    memcpy(&flag, (const unsigned char *)s->sem + 8, sizeof flag);
    return flag == 0 || flag == 128;
  }
#else
  (void)s;
#endif
  return 1;
}

/* acc[0] of a wait: 1 while this wait is registered as a waiter in the
 * semaphore word (a task between its LIPC_AGAIN and its next try). */

/* Undo the waiter registration of w (s still open: its memory is mapped;
 * a closed s took it back in sem_drop_waits). */
static void sem_unwait(lsem *s, lipc_wait *w) {
  if (w->acc[0] == 0) return;
  w->acc[0] = 0;
  if (!s->h.open) return;
#ifdef SEM_FUTEX
  atomic_fetch_sub(&((glibc_sem *)s->sem)->data, SEM_WAITER);
#endif
  s->twaits--;
}

/* The wait ends without another try (timeout, Ctrl-C, cancel): unregister,
 * and pass on a wake-up this wait may have taken from sem_post (it wakes
 * one waiter) while a token is there for the others. */
static void sem_leave(lipc_wait *w) {
  lsem *s = w->p;
  int was = w->acc[0] != 0;
  sem_unwait(s, w);
#ifdef SEM_FUTEX
  if (was && s->h.open) {
    uint64_t d = atomic_load(&((glibc_sem *)s->sem)->data);
    if ((uint32_t)d > 0 && (d >> 32) > 0) sem_futex_wake(s->sem, 1);
  }
#else
  (void)was;
#endif
}

/* The absolute CLOCK_MONOTONIC end of one slice of a blocking call: the
 * deadline, or SEM_SLICE_NS from now when that comes first. */
static void sem_slice(const lipc_deadline *d, struct timespec *abs) {
  clock_gettime(CLOCK_MONOTONIC, abs);
  abs->tv_nsec += SEM_SLICE_NS;
  if (abs->tv_nsec >= 1000000000L) { abs->tv_sec++; abs->tv_nsec -= 1000000000L; }
  if (!d->forever && (d->end.tv_sec < abs->tv_sec ||
                      (d->end.tv_sec == abs->tv_sec && d->end.tv_nsec < abs->tv_nsec)))
    *abs = d->end;
}

/* One try of s:wait.  Outside a task: sem_trywait, then sem_wait without
 * a timeout, or sem_clockwait for one slice of a finite one (a slice that
 * ends before the deadline returns LIPC_EINTR: lipc_run checks Ctrl-C and
 * tries again).  In a task: sem_trywait, then
 * register as a waiter and yield on the value word while it holds 0. */
static int sem_try(lua_State *L, lipc_wait *w) {
  lsem *s = w->p;
  if (!s->h.open) { w->acc[0] = 0; return lipc_closed_error(L, &sem_class); }
  sem_unwait(s, w);
  for (;;) {
    if (sem_trywait(s->sem) == 0) break;
    int err = errno;
    if (err != EAGAIN) return lipc_error(L, err, "sem_wait", s->region ? NULL : s->name);
    if (w->block) {
      if (!w->d.forever && lipc_deadline_expired(&w->d)) return LIPC_AGAIN;  /* timeout */
      int rc;
      if (w->d.forever) {
        /* no timer on the hot path (it costs ~0.5 us a wait): glibc's
         * sem_wait returns EINTR when lua5.4's SIGINT handler runs (it is
         * installed without SA_RESTART); only a Ctrl-C landing between
         * lipc_run's check and the futex call waits for the next post */
        rc = sem_wait(s->sem);
      } else {
        struct timespec abs;
        sem_slice(&w->d, &abs);
        rc = sem_clockwait(s->sem, CLOCK_MONOTONIC, &abs);
      }
      if (rc == 0) break;
      err = errno;
      if (err == EINTR) return LIPC_EINTR;
      if (err == ETIMEDOUT) return lipc_deadline_expired(&w->d) ? LIPC_AGAIN : LIPC_EINTR;
      return lipc_error(L, err, "sem_wait", s->region ? NULL : s->name);
    }
#ifdef SEM_FUTEX
    glibc_sem *g = (glibc_sem *)s->sem;
    uint64_t d = atomic_fetch_add(&g->data, SEM_WAITER) + SEM_WAITER;
    if ((uint32_t)d != 0) {   /* a token came meanwhile: take it */
      atomic_fetch_sub(&g->data, SEM_WAITER);
      continue;
    }
    w->acc[0] = 1;
    if (s->twaits++ == 0) s->twait_pid = getpid();
    w->word = (const uint32_t *)g;   /* the value: low half of data */
    w->val = 0;
    w->shared = 1;
#endif
    return LIPC_AGAIN;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* s:wait([timeout]): true | nil, "timeout", ETIMEDOUT. */
static int lsem_wait(lua_State *L) {
  lsem *s = fast_sem(L);
  if (!sem_sane(s)) return lipc_error(L, EINVAL, "sem_wait", "(not a process-shared semaphore: overwritten?)");
  /* the fast path: a token is there (the timeout is checked all the same) */
  int t = lua_type(L, 2);
  if ((t == LUA_TNONE || t == LUA_TNIL || (t == LUA_TNUMBER && lua_tonumber(L, 2) >= 0)) &&
      sem_trywait(s->sem) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lipc_wait w;
  lipc_wait_init(L, &w, 2, sem_try);
  w.p = s;
  w.call = "sem_wait";
  w.leave = sem_leave;
  return lipc_run(L, &w);
}

/* s:trywait(): true | false. */
static int lsem_trywait(lua_State *L) {
  lsem *s = fast_sem(L);
  if (sem_trywait(s->sem) == 0) { lua_pushboolean(L, 1); return 1; }
  if (errno == EAGAIN) { lua_pushboolean(L, 0); return 1; }
  return lipc_error(L, errno, "sem_trywait", s->region ? NULL : s->name);
}

/* s:post(): true. */
static int lsem_post(lua_State *L) {
  lsem *s = fast_sem(L);
  if (!sem_sane(s)) return lipc_error(L, EINVAL, "sem_post", "(not a process-shared semaphore: overwritten?)");
  if (sem_post(s->sem) != 0) return lipc_error(L, errno, "sem_post", s->region ? NULL : s->name);
  lua_pushboolean(L, 1);
  return 1;
}

/* s:value(): the current count. */
static int lsem_value(lua_State *L) {
  lsem *s = lipc_check(L, 1, &sem_class);
  int v;
  if (sem_getvalue(s->sem, &v) != 0) return lipc_error(L, errno, "sem_getvalue", NULL);
  lua_pushinteger(L, v);
  return 1;
}

/* s:unlink(): remove a named semaphore's name now. */
static int lsem_unlink(lua_State *L) {
  lsem *s = lipc_check(L, 1, &sem_class);
  if (s->region) return luaL_error(L, "unlink: an unnamed semaphore has no name");
  if (sem_unlink(s->name) != 0) return lipc_error(L, errno, "sem_unlink", s->name);
  s->h.owns = 0;
  lua_pushboolean(L, 1);
  return 1;
}

/* s:destroy(): sem_destroy an unnamed semaphore, then close s. */
static int lsem_destroy(lua_State *L) {
  lsem *s = lipc_check(L, 1, &sem_class);
  if (!s->region) return luaL_error(L, "destroy: only for unnamed semaphores (use close/unlink)");
  int err = sem_destroy(s->sem) != 0 ? errno : 0;
  (void)lipc_release(&s->h);
  if (err) return lipc_error(L, err, "sem_destroy", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* s:name(): the name, nil for an unnamed semaphore. */
static int lsem_name(lua_State *L) {
  lsem *s = lipc_check(L, 1, &sem_class);
  if (s->region) lua_pushnil(L);
  else lua_pushstring(L, s->name);
  return 1;
}

/* Hot methods: closures over the metatable (see fast_sem). */
static const luaL_Reg sem_methods[] = {
  {"wait", lsem_wait},
  {"trywait", lsem_trywait},
  {"post", lsem_post},
  {"value", lsem_value},
  {"unlink", lsem_unlink},
  {"destroy", lsem_destroy},
  {"name", lsem_name},
  {NULL, NULL}
};

static const luaL_Reg sem_funcs[] = {
  {"open", lsem_open},
  {"new", lsem_new},
  {"attach", lsem_attach},
  {"unlink", lsem_unlink_name},
  {NULL, NULL}
};

/* ---- System V semaphore sets -------------------------------------------- */

typedef struct lsemset {
  lipc_handle h;
  int id;
  int nsems;
} lsemset;

/* The kernel's largest semaphore value (SEMVMX). */
#define SEMVMX_ 32767

/* Release: IPC_RMID when owned; the set has no descriptor. */
static int semset_release(lipc_handle *h, int remove_name) {
  lsemset *s = (lsemset *)h;
  if (remove_name && semctl(s->id, 0, IPC_RMID) != 0 && errno != EINVAL && errno != EIDRM) return errno;
  return 0;
}

/* __tostring identity. */
static void semset_describe(lipc_handle *h, luaL_Buffer *b) {
  lsemset *s = (lsemset *)h;
  char tmp[64];
  snprintf(tmp, sizeof tmp, "semid=%d, %d semaphores", s->id, s->nsems);
  luaL_addstring(b, tmp);
}

/* ipc.audit() identity. */
static void semset_audit(lua_State *L, lipc_handle *h) {
  lua_pushinteger(L, ((lsemset *)h)->id);
  lua_setfield(L, -2, "id");
}

static const lipc_class semset_class = {
  "lipc.semset", "semset", sizeof(lsemset), semset_release, semset_describe, semset_audit, 0
};

static const char *const SET_OPTS[] = { "create", "excl", "mode", "persist", "values", NULL };

/* ipc.semset.get(key, nsems, opts): semget (+ SETALL of values when created). */
static int lsemset_get(lua_State *L) {
  /* a key is 32 bits: signed (as ftok and ipcs -m show it) or unsigned (0xdeadbeef) */
  key_t key = (key_t)(int32_t)(uint32_t)lipc_checkrange(L, 1, INT32_MIN, UINT32_MAX);
  int nsems = (int)lipc_optrange(L, 2, 0, 0, 65535);
  lipc_checkoptions(L, 3, SET_OPTS);
  int create = lipc_optbool(L, 3, "create", key == IPC_PRIVATE);
  int excl = lipc_optbool(L, 3, "excl", 0);
  int persist = lipc_optbool(L, 3, "persist", 0);
  mode_t mode = lipc_optmode(L, 3, "mode", 0600);
  if (create && nsems == 0) luaL_argerror(L, 2, "nsems (> 0) is required with create = true");
  if (key == IPC_PRIVATE && !create) luaL_argerror(L, 3, "IPC_PRIVATE always creates");
  unsigned short *vals = NULL;
  int t = lua_isnoneornil(L, 3) ? LUA_TNIL : lua_getfield(L, 3, "values");
  if (t != LUA_TNIL) {
    if (t != LUA_TTABLE) luaL_argerror(L, 3, "option 'values': table expected");
    if ((int)luaL_len(L, -1) != nsems)
      luaL_argerror(L, 3, lua_pushfstring(L, "option 'values': nsems (%d) entries expected", nsems));
    vals = lua_newuserdatauv(L, sizeof(unsigned short) * (size_t)(nsems ? nsems : 1), 0);
    for (int i = 0; i < nsems; i++) {
      int isnum = 0;
      lua_geti(L, -2, i + 1);
      lua_Integer v = lua_tointegerx(L, -1, &isnum);
      if (!isnum || v < 0 || v > SEMVMX_)
        luaL_argerror(L, 3, lua_pushfstring(L, "option 'values': [%d] must be an integer 0..%d", i + 1, SEMVMX_));
      vals[i] = (unsigned short)v;
      lua_pop(L, 1);
    }
  }
  lsemset *s = lipc_new(L, &semset_class, 0);
  s->h.persist = (unsigned char)persist;
  s->id = -1;
  char what[32];
  snprintf(what, sizeof what, "key=%d", (int)key);
  int id, created = 0;
  for (;;) {
    if (create) {
      id = semget(key, nsems, IPC_CREAT | IPC_EXCL | (int)(mode & 0777));
      if (id >= 0) { created = 1; break; }
      if (errno != EEXIST || excl || key == IPC_PRIVATE) return lipc_error(L, errno, "semget", what);
    }
    id = semget(key, nsems, 0);
    if (id >= 0) break;
    if (errno != ENOENT || !create) return lipc_error(L, errno, "semget", what);
  }
  s->id = id;
  s->h.owns = (unsigned char)created;
  s->h.open = 1;  /* from here a failure closes (and removes what we created) */
  struct semid_ds ds;
  union { int val; struct semid_ds *buf; unsigned short *array; } arg;
  arg.buf = &ds;
  if (semctl(id, 0, IPC_STAT, arg) != 0) {
    int err = errno;
    s->h.persist = 0;  /* a set we created half-way never stays behind */
    (void)lipc_release(&s->h);
    return lipc_error(L, err, "semctl IPC_STAT", what);
  }
  s->nsems = (int)ds.sem_nsems;
  if (created && vals) {
    arg.array = vals;
    if (semctl(id, 0, SETALL, arg) != 0) {
      int err = errno;
      s->h.persist = 0;
      (void)lipc_release(&s->h);
      return lipc_error(L, err, "semctl SETALL", what);
    }
  }
  return 1;
}

/* The 0-based index at idx, within the set. */
static int checkindex(lua_State *L, int idx, lsemset *s) {
  return (int)lipc_checkrange(L, idx, 0, s->nsems - 1);
}

/* One try of set:op.  The operations are at stack index 4: n of them as
 * given, then the same n with IPC_NOWAIT (acc[0] = n; acc[1] = 1 when one
 * of them has nowait = true).  Outside a task: semtimedop for one slice
 * (a slice that ends before the deadline returns LIPC_EINTR: lipc_run
 * checks Ctrl-C and tries again).  In a task, or once the deadline passed:
 * the IPC_NOWAIT copy, and LIPC_AGAIN with nothing to wait on (lipc_run
 * backs off: System V semaphores have no futex word). */
static int semset_try(lua_State *L, lipc_wait *w) {
  lsemset *s = w->p;
  if (!s->h.open) return lipc_closed_error(L, &semset_class);
  size_t n = (size_t)w->acc[0];
  struct sembuf *ops = lua_touserdata(L, 4);
  int rc;
  if (w->block && !(!w->d.forever && lipc_deadline_expired(&w->d))) {
    struct timespec slice = { 0, SEM_SLICE_NS }, left;
    if (lipc_deadline_left(&w->d, &left) == 0 && left.tv_sec == 0 && left.tv_nsec < slice.tv_nsec)
      slice = left;
    rc = semtimedop(s->id, ops, n, &slice);
    if (rc == 0) { lua_pushboolean(L, 1); return 1; }
    int err = errno;
    if (err == EINTR) return LIPC_EINTR;   /* never restarted after a handler */
    if (err != EAGAIN) return lipc_error(L, err, "semop", NULL);
    if (w->acc[1]) return lipc_timeout(L);  /* a nowait operation would block */
    return lipc_deadline_expired(&w->d) ? LIPC_AGAIN : LIPC_EINTR;
  }
  rc = semop(s->id, ops + n, n);
  if (rc == 0) { lua_pushboolean(L, 1); return 1; }
  int err = errno;
  if (err == EINTR) return LIPC_EINTR;
  if (err != EAGAIN) return lipc_error(L, err, "semop", NULL);
  /* which operation would block is not told: with a nowait one among
   * them, the call ends as a blocking semop's nowait would */
  if (w->acc[1]) return lipc_timeout(L);
  return LIPC_AGAIN;
}

/* set:op({ {index, delta, undo = bool, nowait = bool}, ... }, timeout): atomic
 * semop; true | nil, "timeout" | error triple. */
static int lsemset_op(lua_State *L) {
  lsemset *s = lipc_check(L, 1, &semset_class);
  luaL_checktype(L, 2, LUA_TTABLE);
  lipc_wait w;
  lipc_wait_init(L, &w, 3, semset_try);
  lua_settop(L, 3);
  lua_Integer n = luaL_len(L, 2);
  luaL_argcheck(L, n >= 1 && n <= 65535, 2, "1 to 65535 operations expected");
  struct sembuf *ops = lua_newuserdatauv(L, sizeof(struct sembuf) * 2 * (size_t)n, 0);  /* index 4 */
  static const char *const op_keys[] = { "undo", "nowait", NULL };
  int any_nowait = 0;
  for (lua_Integer i = 0; i < n; i++) {
    if (lua_geti(L, 2, i + 1) != LUA_TTABLE)
      luaL_argerror(L, 2, lua_pushfstring(L, "operation %I: table {index, delta, undo=} expected", i + 1));
    int top = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, top)) {
      lua_pop(L, 1);
      int ok = lua_type(L, -1) == LUA_TNUMBER && lua_isinteger(L, -1) &&
               (lua_tointeger(L, -1) == 1 || lua_tointeger(L, -1) == 2);
      for (int k = 0; !ok && op_keys[k]; k++)
        ok = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), op_keys[k]) == 0;
      if (!ok) luaL_argerror(L, 2, lua_pushfstring(L, "operation %I: unknown field '%s'", i + 1,
                                                   luaL_tolstring(L, -1, NULL)));
    }
    int isnum;
    lua_geti(L, top, 1);
    lua_Integer idx = lua_tointegerx(L, -1, &isnum);
    if (!isnum || idx < 0 || idx >= s->nsems)
      luaL_argerror(L, 2, lua_pushfstring(L, "operation %I: index must be 0..%d", i + 1, s->nsems - 1));
    lua_geti(L, top, 2);
    lua_Integer delta = lua_tointegerx(L, -1, &isnum);
    if (!isnum || delta < -SEMVMX_ || delta > SEMVMX_)
      luaL_argerror(L, 2, lua_pushfstring(L, "operation %I: delta must be an integer -%d..%d", i + 1,
                                          SEMVMX_, SEMVMX_));
    int t1 = lua_getfield(L, top, "undo");
    int t2 = lua_getfield(L, top, "nowait");
    if ((t1 != LUA_TNIL && t1 != LUA_TBOOLEAN) || (t2 != LUA_TNIL && t2 != LUA_TBOOLEAN))
      luaL_argerror(L, 2, lua_pushfstring(L, "operation %I: undo/nowait must be booleans", i + 1));
    ops[i].sem_num = (unsigned short)idx;
    ops[i].sem_op = (short)delta;
    ops[i].sem_flg = (short)((lua_toboolean(L, -2) ? SEM_UNDO : 0) | (lua_toboolean(L, -1) ? IPC_NOWAIT : 0));
    if (lua_toboolean(L, -1)) any_nowait = 1;
    ops[n + i] = ops[i];
    ops[n + i].sem_flg |= IPC_NOWAIT;
    lua_settop(L, top - 1);
  }
  w.p = s;
  w.call = "semop";
  w.acc[0] = n;
  w.acc[1] = any_nowait;
  return lipc_run(L, &w);
}

/* One semctl command on semaphore i returning an integer. */
static int getcmd(lua_State *L, int cmd, const char *call) {
  lsemset *s = lipc_check(L, 1, &semset_class);
  int i = checkindex(L, 2, s);
  int v = semctl(s->id, i, cmd);
  if (v < 0) return lipc_error(L, errno, call, NULL);
  lua_pushinteger(L, v);
  return 1;
}

/* set:get(i): GETVAL. */
static int lsemset_getval(lua_State *L) { return getcmd(L, GETVAL, "semctl GETVAL"); }
/* set:pid(i): GETPID, the pid of the last semop on i. */
static int lsemset_pid(lua_State *L) { return getcmd(L, GETPID, "semctl GETPID"); }
/* set:waiting(i): GETNCNT, processes waiting for i to increase. */
static int lsemset_ncnt(lua_State *L) { return getcmd(L, GETNCNT, "semctl GETNCNT"); }
/* set:zwaiting(i): GETZCNT, processes waiting for i to become zero. */
static int lsemset_zcnt(lua_State *L) { return getcmd(L, GETZCNT, "semctl GETZCNT"); }

/* set:set(i, v): SETVAL. */
static int lsemset_setval(lua_State *L) {
  lsemset *s = lipc_check(L, 1, &semset_class);
  int i = checkindex(L, 2, s);
  union { int val; struct semid_ds *buf; unsigned short *array; } arg;
  arg.val = (int)lipc_checkrange(L, 3, 0, SEMVMX_);
  if (semctl(s->id, i, SETVAL, arg) != 0) return lipc_error(L, errno, "semctl SETVAL", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* set:values(): every value as a list (GETALL). */
static int lsemset_values(lua_State *L) {
  lsemset *s = lipc_check(L, 1, &semset_class);
  unsigned short *vals = lua_newuserdatauv(L, sizeof(unsigned short) * (size_t)s->nsems, 0);
  union { int val; struct semid_ds *buf; unsigned short *array; } arg;
  arg.array = vals;
  if (semctl(s->id, 0, GETALL, arg) != 0) return lipc_error(L, errno, "semctl GETALL", NULL);
  lua_createtable(L, s->nsems, 0);
  for (int i = 0; i < s->nsems; i++) {
    lua_pushinteger(L, vals[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* set:remove(): IPC_RMID now. */
static int lsemset_remove(lua_State *L) {
  lsemset *s = lipc_check(L, 1, &semset_class);
  if (semctl(s->id, 0, IPC_RMID) != 0) return lipc_error(L, errno, "semctl IPC_RMID", NULL);
  s->h.owns = 0;
  lua_pushboolean(L, 1);
  return 1;
}

/* set:id(): the semid. */
static int lsemset_id(lua_State *L) {
  lua_pushinteger(L, ((lsemset *)lipc_check(L, 1, &semset_class))->id);
  return 1;
}

/* #set: the number of semaphores. */
static int lsemset_len(lua_State *L) {
  lua_pushinteger(L, ((lsemset *)lipc_check(L, 1, &semset_class))->nsems);
  return 1;
}

static const luaL_Reg set_methods[] = {
  {"op", lsemset_op},
  {"get", lsemset_getval},
  {"set", lsemset_setval},
  {"values", lsemset_values},
  {"pid", lsemset_pid},
  {"waiting", lsemset_ncnt},
  {"zwaiting", lsemset_zcnt},
  {"remove", lsemset_remove},
  {"id", lsemset_id},
  {NULL, NULL}
};

void lipc_open_sem(lua_State *L) {
  lipc_register(L, &sem_class, sem_methods);
  lipc_register(L, &semset_class, set_methods);
  luaL_getmetatable(L, semset_class.name);
  lua_pushcfunction(L, lsemset_len);
  lua_setfield(L, -2, "__len");
  lua_pop(L, 1);
  lipc_subtable(L, -1, "sem");
  luaL_setfuncs(L, sem_funcs, 0);
  lua_pushinteger(L, SEM_VALUE_MAX);
  lua_setfield(L, -2, "VALUE_MAX");
  lua_pushinteger(L, (lua_Integer)sizeof(sem_t));
  lua_setfield(L, -2, "SIZE");
  lua_pop(L, 1);
  lipc_subtable(L, -1, "semset");
  lua_pushcfunction(L, lsemset_get);
  lua_setfield(L, -2, "get");
  lua_pushinteger(L, SEMVMX_);
  lua_setfield(L, -2, "VALUE_MAX");
  lua_pop(L, 1);
}

/* ---- ipc.poll's probe (csrc/ready.h) ---------------------------------- */

#include "ready.h"

int lipc_sem_ready(lipc_handle *h) {
  int v = 0;
  if (sem_getvalue(((lsem *)h)->sem, &v) != 0) return 1;   /* the next call reports it */
  return v > 0;
}
