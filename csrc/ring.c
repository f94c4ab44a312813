/*
 * ring.c - ipc.ring: a bounded shared-memory ring of length-prefixed
 * messages between processes, with futex wake-ups (design and layout:
 * doc/ring.md).  Producers serialize on one process-shared lock word,
 * consumers on another, so any number of each is safe.
 *
 * The ring is built on a region (region.h): its handle starts with a
 * lipc_region, made, opened, mapped and unlinked by the segment code of
 * csrc/shm.c: a shared anonymous mapping (shared with forked children) or
 * a POSIX shm segment (ipc.ring.open from unrelated processes).  The fast
 * path of send/recv is a few atomics and memcpy: FUTEX_WAKE is called only
 * when the other side counted itself as sleeping.
 *
 * send and recv are try functions run by lipc_run (core.h, "the one wait
 * path"): a try takes its side's lock word, moves one message or finds it
 * must wait, and then lets go of the lock, counts itself as a sleeper and
 * returns LIPC_AGAIN with the futex word (a lock word, head_seq or
 * tail_seq).  lipc_run sleeps on it in slices or, in a task, yields to the
 * loop's futex waiter (csrc/task.c); w->recheck makes it try again every
 * 0.2 s, when dead lock holders and dead peers are looked for (nothing
 * wakes a sleeper when they die).  In a task no lock is held across a wait
 * (tasks of one process share its pid, the lock holder's mark); a blocked
 * process keeps its side's lock while it waits for room or data, as a
 * plain blocking call would (no other code of it runs meanwhile).
 */
#include "core.h"
#include "codec.h"
#include "region.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define RING_MAGIC 0x474E524Cu    /* "LRNG" little-endian */
#define RING_VERSION 1u
#define RING_MIN 64
#define RING_MAX ((uint64_t)1 << 32)
#define REC_HDR 8                 /* per message: uint32 length + uint32 0 */

#define RING_SLOTS 32              /* registered producers / consumers */
#define LOCK_SEND 1u
#define LOCK_RECV 2u

/* The shared header; producer and consumer fields on separate cache lines. */
typedef struct ring_hdr {
  uint32_t magic, version;
  uint64_t capacity;              /* data bytes, a multiple of 8 */
  char pad0[48];
  /* written by the producer */
  _Atomic uint64_t tail;          /* bytes ever written */
  _Atomic uint32_t tail_seq;      /* futex: bumped after each publish */
  _Atomic int64_t tail_ns;        /* CLOCK_MONOTONIC ns of the last publish that woke a sleeper */
  char pad1[40];
  /* written by the consumer */
  _Atomic uint64_t head;          /* bytes ever consumed */
  _Atomic uint32_t head_seq;      /* futex: bumped after each consume */
  _Atomic int64_t head_ns;        /* CLOCK_MONOTONIC ns of the last consume that woke a sleeper */
  char pad2[40];
  /* locks (holder pid or 0) and waiter counts */
  _Atomic uint32_t send_lock, recv_lock;
  _Atomic uint32_t send_lock_waiters, recv_lock_waiters;
  _Atomic uint32_t recv_waiters;  /* consumers sleeping on tail_seq */
  _Atomic uint32_t send_waiters;  /* producers sleeping on head_seq */
  _Atomic uint32_t prod_ever, cons_ever;
  _Atomic uint32_t stamp_tail, stamp_head;   /* an adaptive waiter wants tail_ns / head_ns */
  char pad3[24];
  /* registered processes: a pid per slot, 0 when free */
  _Atomic int32_t producers[RING_SLOTS];
  _Atomic int32_t consumers[RING_SLOTS];
} ring_hdr;

#define RING_HDR 512              /* header bytes before the data */
_Static_assert(sizeof(ring_hdr) <= RING_HDR, "ring header too large");
/* the stamps live in what was padding: the other fields keep their places */
_Static_assert(offsetof(ring_hdr, head) == 128 && offsetof(ring_hdr, send_lock) == 192 &&
               offsetof(ring_hdr, producers) == 256, "ring header layout");

typedef struct lring {
  lipc_region reg;                /* the segment; reg.h is the ring's handle */
  ring_hdr *hdr;                  /* reg.addr while open */
  unsigned char *data;
  uint64_t cap;
  int spin;                       /* polls before sleeping; SPIN_AUTO: adaptive */
  int spin_skip, spin_backoff;    /* auto: waits left without spinning, and the
                                   * next such pause after a spin that missed */
  int64_t spin_avg;               /* auto: ns a wait usually took (spinning or asleep) */
  int64_t wait_t0;                /* auto: when the current wait began, or 0 */
  int one_cpu, aff_age;           /* auto: this process may run on one CPU only,
                                   * checked again after aff_age more waits */
  pid_t aff_pid;                  /* ... in this process */
  int prod_slot, cons_slot;       /* my registration, or -1 */
  pid_t prod_pid, cons_pid;       /* the pid that registered (fork check) */
  unsigned char locks;            /* LOCK_SEND | LOCK_RECV held by a call on this
                                   * handle (left set when it raised) */
  int twaits[5];                  /* sleepers that tasks of twait_pid counted (W_*) */
  pid_t twait_pid;
  lipc_buf sbuf;                  /* sendv: the value encoded (used within one call) */
  lipc_buf rbuf;                  /* recvv: a message that wraps, made contiguous */
} lring;

/* This process's pid, cached in a MADV_WIPEONFORK page (zeroed in a
 * forked child), so the send/recv fast path makes no getpid syscall. */
static pid_t *pid_cache;

/* The current pid. */
static pid_t my_pid(void) {
  if (pid_cache == NULL) return getpid();
  pid_t p = *pid_cache;
  if (p == 0) p = *pid_cache = getpid();
  return p;
}

static int ring_release(lipc_handle *h, int remove_name);
static void ring_describe(lipc_handle *h, luaL_Buffer *b);
static void ring_audit(lua_State *L, lipc_handle *h);

static const lipc_class ring_class = {
  "lipc.ring", "ring", sizeof(lring), ring_release, ring_describe, ring_audit, 0
};

/* A polite pause inside a spin loop. */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* futex(2) on a shared (not private) word: the ring is cross-process. */
static long futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts) {
  return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, 0);
}

/* 1 unless pid is gone (no such process, or a zombie waiting to be reaped). */
static int pid_alive(pid_t pid) {
  if (pid <= 0) return 1;
  if (kill(pid, 0) != 0 && errno == ESRCH) return 0;
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno != ENOENT;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 1;
  buf[n] = '\0';
  const char *rp = strrchr(buf, ')');
  if (rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X')) return 0;
  return 1;
}

/* Bump a sequence word and wake everyone sleeping on it. */
static void ring_kick(_Atomic uint32_t *seq) {
  atomic_fetch_add(seq, 1);
  futex(seq, FUTEX_WAKE, INT_MAX, NULL);
}

/* What a sleeping send or recv counted itself in (acc[1] of its wait). */
enum { W_NONE, W_SENDLOCK, W_RECVLOCK, W_SPACE, W_DATA };

/* The sleeper count of kind. */
static _Atomic uint32_t *wait_count(ring_hdr *hd, int kind) {
  switch (kind) {
    case W_SENDLOCK: return &hd->send_lock_waiters;
    case W_RECVLOCK: return &hd->recv_lock_waiters;
    case W_SPACE: return &hd->send_waiters;
    default: return &hd->recv_waiters;
  }
}

/* The futex word sleepers of kind wait on. */
static _Atomic uint32_t *wait_word(ring_hdr *hd, int kind) {
  switch (kind) {
    case W_SENDLOCK: return &hd->send_lock;
    case W_RECVLOCK: return &hd->recv_lock;
    case W_SPACE: return &hd->head_seq;
    default: return &hd->tail_seq;
  }
}

/* Count w as a sleeper of kind (before it sleeps). */
static void ring_count(lring *r, lipc_wait *w, int kind, pid_t me) {
  atomic_fetch_add(wait_count(r->hdr, kind), 1);
  int total = r->twaits[1] + r->twaits[2] + r->twaits[3] + r->twaits[4];
  if (total == 0 || r->twait_pid != me) {
    memset(r->twaits, 0, sizeof r->twaits);
    r->twait_pid = me;
  }
  r->twaits[kind]++;
  w->acc[1] = kind;
}

/* Stop counting w (after it slept); a closed ring took the counts back. */
static void ring_uncount(lring *r, lipc_wait *w) {
  int kind = (int)w->acc[1];
  w->acc[1] = W_NONE;
  if (kind == W_NONE || !r->reg.h.open) return;
  atomic_fetch_sub(wait_count(r->hdr, kind), 1);
  if (r->twaits[kind] > 0) r->twaits[kind]--;
}

/* Closing r while tasks of this process sleep through it: take their
 * counts back and have the loop resume them (they find r closed) now. */
static void ring_drop_waits(lring *r, pid_t me) {
  int any = 0;
  if (r->twait_pid == me) {
    for (int k = W_SENDLOCK; k <= W_DATA; k++) {
      if (r->twaits[k] <= 0) continue;
      atomic_fetch_sub(wait_count(r->hdr, k), (uint32_t)r->twaits[k]);
      any = 1;
    }
  }
  if (any) lipc_task_forget(r->hdr, RING_HDR);
  memset(r->twaits, 0, sizeof r->twaits);
}

/* Drop my registration in slots (if this process made it). */
static void ring_unregister(_Atomic int32_t *slots, int *slot, pid_t *pid, pid_t me) {
  if (*slot >= 0 && *pid == me) {
    int32_t expect = me;
    atomic_compare_exchange_strong(&slots[*slot], &expect, 0);
  }
  *slot = -1;
  *pid = 0;
}

/* Release: unregister this process's roles (waking the peers so they can
 * see end of stream), then unmap and unlink when told to. */
static int ring_release(lipc_handle *h, int remove_name) {
  lring *r = (lring *)h;
  if (r->hdr) {
    pid_t me = my_pid();
    ring_hdr *hd = r->hdr;
    ring_drop_waits(r, me);
    int was_prod = r->prod_slot >= 0 && r->prod_pid == me;
    int was_cons = r->cons_slot >= 0 && r->cons_pid == me;
    ring_unregister(hd->producers, &r->prod_slot, &r->prod_pid, me);
    ring_unregister(hd->consumers, &r->cons_slot, &r->cons_pid, me);
    if (was_prod) ring_kick(&hd->tail_seq);
    if (was_cons) ring_kick(&hd->head_seq);
    /* a lock left behind by a call on this handle that raised (out of
     * memory); never one that a call on another handle to the same ring is
     * holding right now (this may be a __gc run from inside that call) */
    uint32_t mine = (uint32_t)me;
    if ((r->locks & LOCK_SEND) && atomic_compare_exchange_strong(&hd->send_lock, &mine, 0))
      futex(&hd->send_lock, FUTEX_WAKE, 1, NULL);
    mine = (uint32_t)me;
    if ((r->locks & LOCK_RECV) && atomic_compare_exchange_strong(&hd->recv_lock, &mine, 0))
      futex(&hd->recv_lock, FUTEX_WAKE, 1, NULL);
    r->locks = 0;
    r->hdr = NULL;
    r->data = NULL;
  }
  free(r->sbuf.p);
  free(r->rbuf.p);
  memset(&r->sbuf, 0, sizeof r->sbuf);
  memset(&r->rbuf, 0, sizeof r->rbuf);
  /* unmap; the name goes only while it is still this ring's segment */
  return lipc_region_free(&r->reg, remove_name);
}

/* __tostring identity. */
static void ring_describe(lipc_handle *h, luaL_Buffer *b) {
  lring *r = (lring *)h;
  char tmp[64];
  luaL_addstring(b, r->reg.name[0] ? r->reg.name : "anonymous");
  snprintf(tmp, sizeof tmp, ", %llu bytes", (unsigned long long)r->cap);
  luaL_addstring(b, tmp);
}

/* spin = "auto": spin only while it pays (see spin_window). */
#define SPIN_AUTO (-1)

/* ipc.audit() identity, and the spin setting. */
static void ring_audit(lua_State *L, lipc_handle *h) {
  lring *r = (lring *)h;
  if (r->reg.name[0]) {
    lua_pushstring(L, r->reg.name);
    lua_setfield(L, -2, "name");
  }
  if (r->spin == SPIN_AUTO) lua_pushliteral(L, "auto");
  else lua_pushinteger(L, r->spin);
  lua_setfield(L, -2, "spin");
}

#define SPIN_AUTO_MAX 20000       /* ns: the longest adaptive spin */
#define SPIN_AUTO_START 5000      /* ns: the first guess of how long a reply takes */
#define SPIN_BACKOFF_MAX 256      /* waits without spinning after repeated misses */

/* Read the spin option (polls before sleeping, or "auto", the default). */
static int opt_spin(lua_State *L, int idx) {
  if (!lua_isnoneornil(L, idx) && lua_getfield(L, idx, "spin") == LUA_TSTRING) {
    if (strcmp(lua_tostring(L, -1), "auto") != 0)
      luaL_argerror(L, idx, "option 'spin': a number of polls or \"auto\" expected");
    lua_pop(L, 1);
    return SPIN_AUTO;
  }
  if (!lua_isnoneornil(L, idx)) lua_pop(L, 1);
  return (int)lipc_optint(L, idx, "spin", SPIN_AUTO, 0, 1000000);
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Adaptive spinning never spins when this process may run on one CPU only:
 * its peer could not answer while it spins (checked again every 4096 waits
 * and after a fork). */
static int one_cpu(lring *r, pid_t me) {
  if (r->aff_pid != me || --r->aff_age <= 0) {
    cpu_set_t set;
    r->one_cpu = sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) <= 1;
    r->aff_pid = me;
    r->aff_age = 4096;
  }
  return r->one_cpu;
}

/* Adaptive spinning: how long (ns) this wait may spin before it sleeps; 0
 * for none.  Never when waits usually take longer than SPIN_AUTO_MAX, nor
 * for a while after spins that missed (the pause doubles with each miss up
 * to SPIN_BACKOFF_MAX waits: where the peer shares this CPU, a probe then
 * costs one spin every 256 waits); otherwise twice the time a wait usually
 * takes, plus 2 us, at most SPIN_AUTO_MAX. */
static int64_t spin_window(lring *r) {
  if (r->spin_avg > SPIN_AUTO_MAX) return 0;
  if (r->spin_skip > 0) { r->spin_skip--; return 0; }
  int64_t w = 2 * r->spin_avg + 2000;
  return w > SPIN_AUTO_MAX ? SPIN_AUTO_MAX : w;
}

/* One step of a spin before sleeping, given the polls left in *spins
 * (SPIN_AUTO: adaptive; *t0 when its spin began, 0 before, -1 when this
 * try spins no more): 1 to poll again, 0 to go to sleep. */
static int spin_step(lring *r, int *spins, int64_t *t0, int64_t *end, pid_t me) {
  if (*spins > 0) { (*spins)--; cpu_relax(); return 1; }
  if (*spins == 0) return 0;
  /* on one CPU: no spin, no clock read, nothing to learn */
  if (*t0 == 0 && one_cpu(r, me)) { *spins = 0; *t0 = -1; return 0; }
  int64_t t = now_ns();
  if (*t0 == 0) {
    if (r->wait_t0 == 0) r->wait_t0 = t;  /* the wait begins (it may sleep) */
    int64_t w = spin_window(r);
    if (w <= 0) { *spins = 0; *t0 = -1; return 0; }
    *t0 = t;
    *end = t + w;
  }
  if (t < *end) {
    for (int i = 0; i < 16; i++) cpu_relax();
    return 1;
  }
  /* a miss: spin again only after a pause */
  r->spin_backoff = r->spin_backoff ? r->spin_backoff * 2 : 1;
  if (r->spin_backoff > SPIN_BACKOFF_MAX) r->spin_backoff = SPIN_BACKOFF_MAX;
  r->spin_skip = r->spin_backoff;
  *spins = 0;
  *t0 = -1;
  return 0;
}

/* The ring became ready for this try: an adaptive ring learns how long
 * the wait took (a spin that paid ends the pause after misses).  A wait
 * that slept counts until the peer's change (*stamp, written by a peer
 * that woke a sleeper), not until this process ran again: what a spin
 * would have needed, without the wake-up's latency (else two sleeping
 * peers each see the other's wake-up and never start spinning). */
static inline void spin_done(lring *r, int64_t t0, const _Atomic int64_t *stamp) {
  if (r->wait_t0 == 0) return;
  int64_t now = now_ns(), d = now - r->wait_t0;
  if (t0 <= 0) {   /* no spin of this try saw the change: it slept */
    int64_t ch = atomic_load_explicit(stamp, memory_order_relaxed);
    if (ch >= r->wait_t0 && ch <= now) d = ch - r->wait_t0;
  }
  if (d > 1000000) d = 1000000;
  r->spin_avg += (d - r->spin_avg) / 8;
  r->wait_t0 = 0;
  if (t0 > 0) r->spin_backoff = 0;
}

/* An adaptive waiter that may spin is about to sleep: ask the peer to
 * stamp the change that wakes it (once; the flag stays for the ring's
 * life, and the stamp costs a clock read only beside a FUTEX_WAKE). */
static inline void want_stamp(lring *r, _Atomic uint32_t *flag) {
  if (r->spin == SPIN_AUTO && !r->one_cpu && !atomic_load_explicit(flag, memory_order_relaxed))
    atomic_store_explicit(flag, 1, memory_order_relaxed);
}

/* Fresh adaptive state for a new handle. */
static void spin_init(lring *r, int spin) {
  r->spin = spin;
  r->spin_avg = SPIN_AUTO_START;
}

/* Point r at the ring inside its mapped region. */
static void ring_attach(lring *r) {
  r->hdr = (ring_hdr *)r->reg.addr;
  r->data = r->reg.addr + RING_HDR;
  r->cap = r->reg.size - RING_HDR;
}

/* Fill a new header; the magic is stored last so openers see a whole one. */
static void ring_init(ring_hdr *hd, uint64_t cap) {
  hd->capacity = cap;
  hd->version = RING_VERSION;
  atomic_store_explicit(&hd->tail, 0, memory_order_relaxed);
  atomic_store_explicit(&hd->head, 0, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
  __atomic_store_n(&hd->magic, RING_MAGIC, __ATOMIC_RELEASE);
}

/* ipc.ring.create(bytes, {name=, persist=, mode=, spin=}) -> ring. */
static int lring_create(lua_State *L) {
  static const char *const allowed[] = { "name", "persist", "mode", "spin", NULL };
  lua_Integer bytes = lipc_checkrange(L, 1, RING_MIN, (lua_Integer)RING_MAX);
  lipc_checkoptions(L, 2, allowed);
  int gen = 0;
  const char *name = NULL;
  if (!lua_isnoneornil(L, 2)) {
    int t = lua_getfield(L, 2, "name");
    if (t == LUA_TBOOLEAN) {
      gen = lua_toboolean(L, -1);
    } else if (t == LUA_TSTRING) {
      name = lipc_checkposixname(L, lua_gettop(L), LIPC_SHM_NAME_MAX);
    } else if (t != LUA_TNIL) {
      return luaL_argerror(L, 2, "option 'name': string or true expected");
    }
  }
  int persist = lipc_optbool(L, 2, "persist", 0);
  mode_t mode = lipc_optmode(L, 2, "mode", 0600);
  int spin = opt_spin(L, 2);
  uint64_t cap = ((uint64_t)bytes + 7) & ~(uint64_t)7;
  if (cap > RING_MAX) cap = RING_MAX;
  lring *r = lipc_new(L, &ring_class, 0);
  spin_init(r, spin);
  r->prod_slot = r->cons_slot = -1;
  if (gen || name) {
    /* ENOSPC names the limit that bit: ipc.limits().shm_free */
    lipc_shm_opts o = { name, (lua_Integer)(RING_HDR + cap), mode, 1, 1, 0, 0 };
    if (lipc_region_shm(L, &r->reg, &o) != 0) return 3;
    r->reg.h.persist = (unsigned char)persist;
  } else if (lipc_region_anon(L, &r->reg, RING_HDR + (size_t)cap) != 0) {
    return 3;
  }
  ring_attach(r);
  ring_init(r->hdr, cap);
  r->reg.h.open = 1;
  return 1;
}

/* ipc.ring.open(name, {spin=}) -> ring (an existing named ring). */
static int lring_open(lua_State *L) {
  static const char *const allowed[] = { "spin", NULL };
  const char *name = lipc_checkposixname(L, 1, LIPC_SHM_NAME_MAX);
  lipc_checkoptions(L, 2, allowed);
  int spin = opt_spin(L, 2);
  lring *r = lipc_new(L, &ring_class, 0);
  spin_init(r, spin);
  r->prod_slot = r->cons_slot = -1;
  lipc_shm_opts o = { name, 0, 0, 0, 0, 0, 0 };
  if (lipc_region_shm(L, &r->reg, &o) != 0) return 3;
  size_t len = r->reg.size;
  if (len < RING_HDR + RING_MIN || (uint64_t)len > RING_HDR + RING_MAX) {
    (void)lipc_region_free(&r->reg, 0);
    return lipc_error(L, EINVAL, "ring.open", name);
  }
  ring_attach(r);
  ring_hdr *hd = r->hdr;
  if (__atomic_load_n(&hd->magic, __ATOMIC_ACQUIRE) != RING_MAGIC || hd->version != RING_VERSION ||
      hd->capacity != r->cap || r->cap % 8 != 0) {
    r->hdr = NULL;
    r->data = NULL;
    (void)lipc_region_free(&r->reg, 0);
    lua_pushnil(L);
    lua_pushfstring(L, "ring.open %s: not a lipc ring (bad magic, version or size)", name);
    lua_pushinteger(L, EINVAL);
    return 3;
  }
  r->reg.h.open = 1;
  return 1;
}

/* Register this process as a producer (slots = producers) or consumer;
 * raises when all RING_SLOTS are held by live processes. */
static void ring_register(lua_State *L, lring *r, int cons, pid_t me) {
  ring_hdr *hd = r->hdr;
  _Atomic int32_t *slots = cons ? hd->consumers : hd->producers;
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < RING_SLOTS; i++) {
      int32_t cur = atomic_load(&slots[i]);
      if (pass == 0 ? cur != 0 : (cur == 0 || pid_alive(cur))) continue;
      if (!atomic_compare_exchange_strong(&slots[i], &cur, me)) continue;
      if (cons) { r->cons_slot = i; r->cons_pid = me; atomic_store(&hd->cons_ever, 1); }
      else { r->prod_slot = i; r->prod_pid = me; atomic_store(&hd->prod_ever, 1); }
      return;
    }
  }
  luaL_error(L, "lipc.ring: more than %d live %s", RING_SLOTS, cons ? "consumers" : "producers");
}

/* State of the other side's registry: 0 someone registered and alive
 * (or nobody ever registered), 1 all closed (end of stream), 2 all
 * registered processes died.  check_alive: test pids (syscalls). */
static int ring_peers(ring_hdr *hd, int cons, int check_alive) {
  _Atomic int32_t *slots = cons ? hd->consumers : hd->producers;
  if (!atomic_load(cons ? &hd->cons_ever : &hd->prod_ever)) return 0;
  int any = 0;
  for (int i = 0; i < RING_SLOTS; i++) {
    int32_t p = atomic_load(&slots[i]);
    if (p == 0) continue;
    any = 1;
    if (!check_alive || pid_alive(p)) return 0;
  }
  return any ? 2 : 1;
}

/* Take a process-shared lock word (holder pid or 0) for the wait w: 0, or
 * LIPC_AGAIN with w set to sleep on the word (counted as kind).  A dead
 * holder's lock is taken over (looked for once this wait slept): a send or
 * recv publishes with one final store, so a process that died inside one
 * left the ring consistent.  A lock held by this very process (a call that
 * raised while holding it) is taken back. */
static int ring_trylock(lring *r, lipc_wait *w, _Atomic uint32_t *lk, int kind, uint32_t me,
                        int waited) {
  for (;;) {
    uint32_t cur = 0;
    if (atomic_compare_exchange_strong(lk, &cur, me)) return 0;
    if (cur == me) return 0;
    if (waited && !pid_alive((pid_t)cur)) {
      if (atomic_compare_exchange_strong(lk, &cur, me)) return 0;
      continue;
    }
    ring_count(r, w, kind, (pid_t)me);
    if (atomic_load(lk) != cur) { ring_uncount(r, w); continue; }
    w->word = (const uint32_t *)lk;
    w->val = cur;
    w->shared = 1;
    w->recheck = 1;
    return LIPC_AGAIN;
  }
}

/* Release a lock word, waking one waiter if any sleeps. */
static void ring_unlock(_Atomic uint32_t *lk, _Atomic uint32_t *waiters) {
  atomic_store(lk, 0);
  if (atomic_load(waiters)) futex(lk, FUTEX_WAKE, 1, NULL);
}

/* acc[0] of a send or recv wait: */
#define W_WAITED 1      /* it slept: dead lock holders and peers are looked for */
#define W_HELD 2        /* outside a task: it kept its side's lock while it slept */

/* A send or recv ends without another try (timeout, Ctrl-C, cancel): stop
 * counting it, let go of a lock it kept, and pass on the wake-up of an
 * unlock it may have taken. */
static void ring_leave(lipc_wait *w) {
  lring *r = w->p;
  int kind = (int)w->acc[1];
  r->wait_t0 = 0;
  ring_uncount(r, w);
  if (r->reg.h.open && (w->acc[0] & W_HELD)) {
    ring_hdr *hd = r->hdr;
    if (kind == W_SPACE) {
      ring_unlock(&hd->send_lock, &hd->send_lock_waiters);
      r->locks &= (unsigned char)~LOCK_SEND;
    } else {
      ring_unlock(&hd->recv_lock, &hd->recv_lock_waiters);
      r->locks &= (unsigned char)~LOCK_RECV;
    }
  }
  w->acc[0] = 0;
  if (!r->reg.h.open || (kind != W_SENDLOCK && kind != W_RECVLOCK)) return;
  _Atomic uint32_t *lk = wait_word(r->hdr, kind);
  if (atomic_load(lk) == 0 && atomic_load(wait_count(r->hdr, kind)) > 0) futex(lk, FUTEX_WAKE, 1, NULL);
}

/* Copy n bytes at ring position pos out to dst (handles the wrap). */
static void ring_read(lring *r, uint64_t pos, void *dst, size_t n) {
  size_t off = (size_t)(pos % r->cap);
  size_t first = r->cap - off < n ? (size_t)(r->cap - off) : n;
  memcpy(dst, r->data + off, first);
  if (n > first) memcpy((char *)dst + first, r->data, n - first);
}

/* Copy n bytes from src into the ring at position pos (handles the wrap). */
static void ring_write(lring *r, uint64_t pos, const void *src, size_t n) {
  size_t off = (size_t)(pos % r->cap);
  size_t first = r->cap - off < n ? (size_t)(r->cap - off) : n;
  memcpy(r->data + off, src, first);
  if (n > first) memcpy(r->data, (const char *)src + first, n - first);
}

/* Push nil, "peer gone", EPIPE. */
static int peer_gone(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "peer gone");
  lua_pushinteger(L, EPIPE);
  return 3;
}

/* A send or recv wait keeps W_WAITED | W_HELD in acc[0], and what it is
 * counted in (W_SENDLOCK ... W_DATA) in acc[1]. */

/* Write the record of s (n bytes, need in the ring) at tail, publish it,
 * wake sleeping consumers and let go of the send lock. */
static void send_publish(lring *r, uint64_t tail, const char *s, size_t n, uint64_t need) {
  ring_hdr *hd = r->hdr;
  uint32_t rec[2] = { (uint32_t)n, 0 };
  ring_write(r, tail, rec, REC_HDR);
  ring_write(r, tail + REC_HDR, s, n);
  atomic_store_explicit(&hd->tail, tail + need, memory_order_release);
  atomic_fetch_add(&hd->tail_seq, 1);
  if (atomic_load(&hd->recv_waiters)) {
    if (atomic_load_explicit(&hd->stamp_tail, memory_order_relaxed))   /* for spin_done */
      atomic_store_explicit(&hd->tail_ns, now_ns(), memory_order_relaxed);
    futex(&hd->tail_seq, FUTEX_WAKE, INT_MAX, NULL);
  }
  ring_unlock(&hd->send_lock, &hd->send_lock_waiters);
  r->locks &= (unsigned char)~LOCK_SEND;
}

/* recvv: decode the n-byte message at ring position pos straight out of
 * the ring's memory (a message that wraps is first copied into r->rbuf)
 * and push the results: the value; nil, "closed" for the empty end
 * marker; nil, the decode error, EBADMSG and the bytes as a string (a
 * channel's batch message, or garbage).  The caller releases the slot
 * afterwards.  May raise (memory). */
static int recv_decode(lua_State *L, lring *r, uint64_t pos, size_t n) {
  if (n == 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  size_t off = (size_t)(pos % r->cap);
  const char *p = (const char *)r->data + off;
  if (r->cap - off < n) {
    lipc_buf *b = &r->rbuf;
    if (b->cap < n) {
      char *np = realloc(b->p, n);
      if (np == NULL) return luaL_error(L, "ring recvv: not enough memory");
      b->p = np;
      b->cap = n;
    }
    ring_read(r, pos, b->p, n);
    p = b->p;
  }
  size_t at;
  int nres = 1;
  const char *err = lipc_decode_from(L, p, n, &at);
  if (err != NULL) {
    lua_pushnil(L);
    lua_pushfstring(L, "ipc.decode: %s (at byte %I)", err, (lua_Integer)at);
    lua_pushinteger(L, EBADMSG);
    lua_pushlstring(L, p, n);
    nres = 4;
  }
  if (p == r->rbuf.p) {
    r->rbuf.len = 0;
    lipc_buf_trim(&r->rbuf);
  }
  return nres;
}

/* With the recv lock held and a record at head (tail != head): push the
 * message, release its space, wake sleeping producers and let go of the
 * lock.  1, or the error triple of a corrupted ring. */
static int recv_take(lua_State *L, lring *r, uint64_t head, uint64_t tail, int decode) {
  ring_hdr *hd = r->hdr;
  uint32_t rec[2];
  ring_read(r, head, rec, REC_HDR);
  uint64_t n = rec[0];
  uint64_t need = REC_HDR + ((n + 7) & ~(uint64_t)7);
  if (n > r->cap - REC_HDR || need > tail - head) {
    ring_unlock(&hd->recv_lock, &hd->recv_lock_waiters);
    r->locks &= (unsigned char)~LOCK_RECV;
    return lipc_error(L, EBADMSG, "ring recv", "corrupted ring");
  }
  /* may raise (memory): the lock is then taken back by our next call */
  int nres = 1;
  if (decode) nres = recv_decode(L, r, head + REC_HDR, (size_t)n);
  else {
    luaL_Buffer b;
    char *dst = luaL_buffinitsize(L, &b, (size_t)n);
    ring_read(r, head + REC_HDR, dst, (size_t)n);
    luaL_pushresultsize(&b, (size_t)n);
  }
  atomic_store_explicit(&hd->head, head + need, memory_order_release);
  atomic_fetch_add(&hd->head_seq, 1);
  if (atomic_load(&hd->send_waiters)) {
    if (atomic_load_explicit(&hd->stamp_head, memory_order_relaxed))   /* for spin_done */
      atomic_store_explicit(&hd->head_ns, now_ns(), memory_order_relaxed);
    futex(&hd->head_seq, FUTEX_WAKE, INT_MAX, NULL);
  }
  ring_unlock(&hd->recv_lock, &hd->recv_lock_waiters);
  r->locks &= (unsigned char)~LOCK_RECV;
  return nres;
}

/* Take the lock word lk when it is free: 1, or 0 (held: nothing done). */
static int lock_free(lring *r, _Atomic uint32_t *lk, uint32_t me, unsigned char bit) {
  uint32_t cur = 0;
  if (!atomic_compare_exchange_strong(lk, &cur, me)) return 0;
  r->locks |= bit;
  return 1;
}


/* The start of a send (recv = 0) or recv try: the ring open, this process
 * registered on that side, and that side's lock taken (0), or LIPC_AGAIN
 * while another holds it; *waitedp: the try follows a wait. */
static int side_enter(lua_State *L, lring *r, lipc_wait *w, int recv, int *waitedp) {
  if (!r->reg.h.open) { w->acc[1] = W_NONE; return lipc_closed_error(L, &ring_class); }
  ring_uncount(r, w);
  int waited = (w->acc[0] & W_WAITED) != 0, held = (w->acc[0] & W_HELD) != 0;
  *waitedp = waited;
  w->acc[0] = 0;
  ring_hdr *hd = r->hdr;
  pid_t me = my_pid();
  if ((recv ? r->cons_pid : r->prod_pid) != me) ring_register(L, r, recv, me);
  _Atomic uint32_t *lk = recv ? &hd->recv_lock : &hd->send_lock;
  if (!(held && atomic_load(lk) == (uint32_t)me) &&
      ring_trylock(r, w, lk, recv ? W_RECVLOCK : W_SENDLOCK, (uint32_t)me, waited) != 0) {
    w->acc[0] = W_WAITED;
    return LIPC_AGAIN;
  }
  r->locks |= recv ? LOCK_RECV : LOCK_SEND;
  return 0;
}

/* One try of ring:send (the ring at stack index 1, the message at 2). */
static int send_try(lua_State *L, lipc_wait *w) {
  lring *r = w->p;
  int waited;
  int again = side_enter(L, r, w, 0, &waited);
  if (again) return again;
  pid_t me = my_pid();
  size_t n;
  const char *s = lua_tolstring(L, 2, &n);
  ring_hdr *hd = r->hdr;
  uint64_t need = REC_HDR + ((n + 7) & ~(uint64_t)7);
  uint64_t tail = atomic_load_explicit(&hd->tail, memory_order_relaxed);
  int spins = r->spin;
  int64_t t0 = 0, tend = 0;
  int peers = 0;
  for (;;) {
    uint64_t head = atomic_load_explicit(&hd->head, memory_order_acquire);
    if (r->cap - (tail - head) >= need) break;
    if (spin_step(r, &spins, &t0, &tend, me)) continue;
    /* the sequence word is read before the last look at head: a consumer
     * that frees room after that look bumps it, and the wait returns */
    uint32_t seen = atomic_load(&hd->head_seq);
    ring_count(r, w, W_SPACE, me);
    want_stamp(r, &hd->stamp_head);
    peers = ring_peers(hd, 1, waited);
    if (r->cap - (tail - atomic_load(&hd->head)) >= need) { ring_uncount(r, w); peers = 0; continue; }
    if (peers != 0 || !w->block) {
      ring_unlock(&hd->send_lock, &hd->send_lock_waiters);
      r->locks &= (unsigned char)~LOCK_SEND;
    }
    if (peers != 0) {
      ring_uncount(r, w);
      if (peers == 2) return peer_gone(L);
      return lipc_error(L, EPIPE, "ring send", "every consumer closed");
    }
    w->word = (const uint32_t *)&hd->head_seq;
    w->val = seen;
    w->shared = 1;
    w->recheck = 1;
    w->acc[0] = W_WAITED | (w->block ? W_HELD : 0);
    return LIPC_AGAIN;
  }
  spin_done(r, t0, &hd->head_ns);
  send_publish(r, tail, s, n, need);
  lua_pushboolean(L, 1);
  return 1;
}

/* The common send without the wait path: this process is the registered
 * producer, the lock is free and the message fits; 1 when p[0..n) was
 * published, 0 when the wait path must do it. */
static int send_fast(lring *r, const char *p, size_t n) {
  ring_hdr *hd = r->hdr;
  pid_t me = my_pid();
  if (r->prod_pid != me || !lock_free(r, &hd->send_lock, (uint32_t)me, LOCK_SEND)) return 0;
  uint64_t need = REC_HDR + ((n + 7) & ~(uint64_t)7);
  uint64_t tail = atomic_load_explicit(&hd->tail, memory_order_relaxed);
  if (r->cap - (tail - atomic_load_explicit(&hd->head, memory_order_acquire)) >= need) {
    send_publish(r, tail, p, n, need);
    return 1;
  }
  ring_unlock(&hd->send_lock, &hd->send_lock_waiters);
  r->locks &= (unsigned char)~LOCK_SEND;
  return 0;
}

/* The largest message of r. */
static uint64_t ring_maxmsg(lring *r) {
  uint64_t maxmsg = r->cap - REC_HDR;
  return maxmsg > UINT32_MAX - 8 ? UINT32_MAX - 8 : maxmsg;
}

/* ring:sendv(v, timeout, limit) -> true: v encoded (ipc.encode's format)
 * into r->sbuf, then sent as ring:send sends it.  The common case (the
 * lock free, room in the ring) copies it from there into the ring; before
 * a wait it becomes a Lua string at index 2 (the handle's buffer is not
 * kept across a wait: another task may use it meanwhile).  An encoding
 * longer than limit: nil, message, EMSGSIZE, its size. */
static int lring_sendv(lua_State *L) {
  lring *r = lipc_check(L, 1, &ring_class);
  luaL_checkany(L, 2);
  if (!r->reg.h.open) return lipc_closed_error(L, &ring_class);
  lua_Integer limit = luaL_optinteger(L, 4, LUA_MAXINTEGER);
  lipc_wait w;
  lipc_wait_init(L, &w, 3, send_try);
  size_t n = lipc_encode_to(L, 2, &r->sbuf);
  if ((lua_Unsigned)n > (lua_Unsigned)limit) {
    lipc_buf_trim(&r->sbuf);
    lua_pushnil(L);
    lua_pushfstring(L, "value of %I bytes exceeds the limit %I", (lua_Integer)n, limit);
    lua_pushinteger(L, EMSGSIZE);
    lua_pushinteger(L, (lua_Integer)n);
    return 4;
  }
  uint64_t maxmsg = ring_maxmsg(r);
  if (n > maxmsg) {
    lipc_buf_trim(&r->sbuf);
    return luaL_argerror(L, 2, lua_pushfstring(L, "message of %I bytes larger than the ring allows (%I)",
                                               (lua_Integer)n, (lua_Integer)maxmsg));
  }
  if (send_fast(r, r->sbuf.p, n)) {
    lipc_buf_trim(&r->sbuf);
    lua_pushboolean(L, 1);
    return 1;
  }
  /* the slow path: the encoding as a string in place of the value */
  lua_settop(L, 3);
  lua_pushlstring(L, r->sbuf.p, n);
  lua_replace(L, 2);
  lipc_buf_trim(&r->sbuf);
  w.p = r;
  w.call = "ring sendv";
  w.leave = ring_leave;
  return lipc_run(L, &w);
}

/* ring:send(s, timeout) -> true; blocks while the ring is full. */
static int lring_send(lua_State *L) {
  lring *r = lipc_check(L, 1, &ring_class);
  size_t n;
  luaL_checklstring(L, 2, &n);
  lipc_wait w;
  lipc_wait_init(L, &w, 3, send_try);
  uint64_t maxmsg = ring_maxmsg(r);
  if (n > maxmsg)
    return luaL_argerror(L, 2, lua_pushfstring(L, "message of %I bytes larger than the ring allows (%I)",
                                               (lua_Integer)n, (lua_Integer)maxmsg));
  if (send_fast(r, lua_tostring(L, 2), n)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  w.p = r;
  w.call = "ring send";
  w.leave = ring_leave;
  return lipc_run(L, &w);
}

/* One try of ring:recv (the ring at stack index 1): the next message, nil
 * at end of stream (every producer closed and the ring empty); with
 * decode (ring:recvv), recv_decode's results, or nil, "closed". */
static inline int recv_try_x(lua_State *L, lipc_wait *w, int decode) {
  lring *r = w->p;
  int waited;
  int again = side_enter(L, r, w, 1, &waited);
  if (again) return again;
  pid_t me = my_pid();
  ring_hdr *hd = r->hdr;
  uint64_t head = atomic_load_explicit(&hd->head, memory_order_relaxed);
  uint64_t tail;
  int spins = r->spin;
  int64_t t0 = 0, tend = 0;
  for (;;) {
    tail = atomic_load_explicit(&hd->tail, memory_order_acquire);
    if (tail != head) break;
    if (spin_step(r, &spins, &t0, &tend, me)) continue;
    uint32_t seen = atomic_load(&hd->tail_seq);
    ring_count(r, w, W_DATA, me);
    want_stamp(r, &hd->stamp_tail);
    int peers = ring_peers(hd, 0, waited);
    if (atomic_load(&hd->tail) != head) { ring_uncount(r, w); continue; }  /* sent just before closing */
    if (peers != 0 || !w->block) {
      ring_unlock(&hd->recv_lock, &hd->recv_lock_waiters);
      r->locks &= (unsigned char)~LOCK_RECV;
    }
    if (peers != 0) {
      ring_uncount(r, w);
      if (peers == 2) return peer_gone(L);
      lua_pushnil(L);   /* end of stream */
      if (!decode) return 1;
      lua_pushliteral(L, "closed");
      return 2;
    }
    w->word = (const uint32_t *)&hd->tail_seq;
    w->val = seen;
    w->shared = 1;
    w->recheck = 1;
    w->acc[0] = W_WAITED | (w->block ? W_HELD : 0);
    return LIPC_AGAIN;
  }
  spin_done(r, t0, &hd->tail_ns);
  return recv_take(L, r, head, tail, decode);
}

static int recv_try(lua_State *L, lipc_wait *w) {
  return recv_try_x(L, w, 0);
}

static int recvv_try(lua_State *L, lipc_wait *w) {
  return recv_try_x(L, w, 1);
}

/* ring:recv / ring:recvv (decode). */
static inline int recv_call(lua_State *L, int decode) {
  lring *r = lipc_check(L, 1, &ring_class);
  lipc_wait w;
  lipc_wait_init(L, &w, 2, decode ? recvv_try : recv_try);
  /* the common case without the wait path: the lock is free and a message
   * is there */
  ring_hdr *hd = r->hdr;
  pid_t me = my_pid();
  if (r->cons_pid == me && lock_free(r, &hd->recv_lock, (uint32_t)me, LOCK_RECV)) {
    uint64_t head = atomic_load_explicit(&hd->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&hd->tail, memory_order_acquire);
    if (tail != head) return recv_take(L, r, head, tail, decode);
    ring_unlock(&hd->recv_lock, &hd->recv_lock_waiters);
    r->locks &= (unsigned char)~LOCK_RECV;
  }
  w.p = r;
  w.call = decode ? "ring recvv" : "ring recv";
  w.leave = ring_leave;
  return lipc_run(L, &w);
}

/* ring:recv(timeout) -> string; nil at end of stream; blocks while empty. */
static int lring_recv(lua_State *L) {
  return recv_call(L, 0);
}

/* ring:recvv(timeout) -> value (decoded straight out of the ring); nil,
 * "closed" at the end marker or end of stream; nil, message, EBADMSG,
 * bytes for a message that does not decode. */
static int lring_recvv(lua_State *L) {
  return recv_call(L, 1);
}

/* #ring: the capacity in bytes. */
static int lring_len(lua_State *L) {
  lring *r = lipc_check(L, 1, &ring_class);
  lua_pushinteger(L, (lua_Integer)r->cap);
  return 1;
}

/* ring:capacity() -> bytes (the largest message is capacity - 8). */
static int lring_capacity(lua_State *L) {
  return lring_len(L);
}

/* ring:name() -> the POSIX name, or nil for an anonymous ring. */
static int lring_name(lua_State *L) {
  lring *r = lipc_check(L, 1, &ring_class);
  if (r->reg.name[0]) lua_pushstring(L, r->reg.name);
  else lua_pushnil(L);
  return 1;
}

/* ring:pending() -> bytes queued (headers and padding included). */
static int lring_pending(lua_State *L) {
  lring *r = lipc_check(L, 1, &ring_class);
  uint64_t t = atomic_load(&r->hdr->tail), h = atomic_load(&r->hdr->head);
  lua_pushinteger(L, (lua_Integer)(t - h));
  return 1;
}

/* ring:unlink() -> true (removes the name now). */
static int lring_unlink(lua_State *L) {
  lring *r = lipc_check(L, 1, &ring_class);
  if (!r->reg.name[0]) return luaL_error(L, "an anonymous lipc.ring has no name to unlink");
  return lipc_region_unlink(L, &r->reg);
}

static const luaL_Reg methods[] = {
  {"send", lring_send},
  {"recv", lring_recv},
  {"sendv", lring_sendv},
  {"recvv", lring_recvv},
  {"capacity", lring_capacity},
  {"name", lring_name},
  {"pending", lring_pending},
  {"unlink", lring_unlink},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"create", lring_create},
  {"open", lring_open},
  {"unlink", lipc_shm_unlink},  /* ipc.ring.unlink(name): shm.c's */
  {NULL, NULL}
};

/* Register lipc.ring and fill ipc.ring. */
void lipc_open_ring(lua_State *L) {
  if (pid_cache == NULL) {
    /* one private page that a forked child sees zeroed (Linux >= 4.14);
     * without MADV_WIPEONFORK every call asks getpid() instead */
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
      if (madvise(p, 4096, MADV_WIPEONFORK) == 0) pid_cache = p;
      else munmap(p, 4096);
    }
  }
  lipc_register(L, &ring_class, methods);
  luaL_getmetatable(L, ring_class.name);
  lua_pushcfunction(L, lring_len);
  lua_setfield(L, -2, "__len");
  lua_pop(L, 1);
  lipc_subtable(L, -1, "ring");
  luaL_setfuncs(L, funcs, 0);
  lua_pop(L, 1);
}

/* ---- ipc.poll's probe (csrc/ready.h) ---------------------------------- */

#include "ready.h"

int lipc_ring_ready(lipc_handle *h) {
  ring_hdr *hd = ((lring *)h)->hdr;
  if (atomic_load_explicit(&hd->tail, memory_order_acquire) != atomic_load_explicit(&hd->head, memory_order_acquire))
    return 1;
  return ring_peers(hd, 0, 0) != 0;   /* every producer closed: recv says end of stream */
}
