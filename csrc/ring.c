/*
 * ring.c - ipc.ring: a bounded shared-memory ring of length-prefixed
 * messages between processes, with futex wake-ups (design and layout:
 * doc/ring.md).  Producers serialize on one process-shared lock word,
 * consumers on another, so any number of each is safe.
 *
 * The mapping is MAP_SHARED|MAP_ANONYMOUS (shared with forked children) or
 * a POSIX shm segment (ipc.ring.open from unrelated processes).  The fast
 * path of send/recv is a few atomics and memcpy: FUTEX_WAKE is called only
 * when the other side counted itself as sleeping.
 */
#include "core.h"
#include "region.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RING_MAGIC 0x474E524Cu    /* "LRNG" little-endian */
#define RING_VERSION 1u
#define RING_MIN 64
#define RING_MAX ((uint64_t)1 << 32)
#define REC_HDR 8                 /* per message: uint32 length + uint32 0 */
#define SLICE_NS 100000000L       /* futex waits sleep at most 100 ms a slice */

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
  char pad1[52];
  /* written by the consumer */
  _Atomic uint64_t head;          /* bytes ever consumed */
  _Atomic uint32_t head_seq;      /* futex: bumped after each consume */
  char pad2[52];
  /* locks (holder pid or 0) and waiter counts */
  _Atomic uint32_t send_lock, recv_lock;
  _Atomic uint32_t send_lock_waiters, recv_lock_waiters;
  _Atomic uint32_t recv_waiters;  /* consumers sleeping on tail_seq */
  _Atomic uint32_t send_waiters;  /* producers sleeping on head_seq */
  _Atomic uint32_t prod_ever, cons_ever;
  char pad3[32];
  /* registered processes: a pid per slot, 0 when free */
  _Atomic int32_t producers[RING_SLOTS];
  _Atomic int32_t consumers[RING_SLOTS];
} ring_hdr;

#define RING_HDR 512              /* header bytes before the data */
_Static_assert(sizeof(ring_hdr) <= RING_HDR, "ring header too large");

typedef struct lring {
  lipc_handle h;
  ring_hdr *hdr;
  unsigned char *data;
  size_t maplen;
  uint64_t cap;
  int spin;                       /* polls before sleeping */
  int prod_slot, cons_slot;       /* my registration, or -1 */
  pid_t prod_pid, cons_pid;       /* the pid that registered (fork check) */
  unsigned char locks;            /* LOCK_SEND | LOCK_RECV held by a call on this
                                   * handle (left set when it raised) */
  char name[256];                 /* "" for an anonymous ring */
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
  int err = 0;
  if (r->hdr) {
    pid_t me = my_pid();
    ring_hdr *hd = r->hdr;
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
    if (munmap(r->hdr, r->maplen) != 0) err = errno;
    r->hdr = NULL;
    r->data = NULL;
  }
  if (remove_name && r->name[0] && shm_unlink(r->name) != 0 && err == 0) err = errno;
  return err;
}

/* __tostring identity. */
static void ring_describe(lipc_handle *h, luaL_Buffer *b) {
  lring *r = (lring *)h;
  char tmp[320];
  snprintf(tmp, sizeof tmp, "%s, %llu bytes", r->name[0] ? r->name : "anonymous",
           (unsigned long long)r->cap);
  luaL_addstring(b, tmp);
}

/* ipc.audit() identity. */
static void ring_audit(lua_State *L, lipc_handle *h) {
  lring *r = (lring *)h;
  if (r->name[0]) {
    lua_pushstring(L, r->name);
    lua_setfield(L, -2, "name");
  }
}

/* Read the spin option (polls before sleeping). */
static int opt_spin(lua_State *L, int idx) {
  return (int)lipc_optint(L, idx, "spin", 0, 0, 1000000);
}

/* Map a fresh header+data area of cap bytes from fd (-1: anonymous) into r. */
static int ring_map(lring *r, int fd, uint64_t cap) {
  size_t len = RING_HDR + (size_t)cap;
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                 fd < 0 ? MAP_SHARED | MAP_ANONYMOUS : MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return errno;
  r->hdr = p;
  r->data = (unsigned char *)p + RING_HDR;
  r->maplen = len;
  r->cap = cap;
  return 0;
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
      name = lipc_checkposixname(L, lua_gettop(L), 255);
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
  r->spin = spin;
  r->prod_slot = r->cons_slot = -1;
  if (gen) lipc_genname(r->name, sizeof r->name, "/", "");
  else if (name) snprintf(r->name, sizeof r->name, "%s", name);
  int err;
  if (r->name[0]) {
    int fd = shm_open(r->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) return lipc_error(L, errno, "shm_open", r->name);
    /* allocate the pages now: a sparse segment on a full /dev/shm would
     * raise SIGBUS on the first write instead of an error here */
    const char *call = "ftruncate";
    err = ftruncate(fd, (off_t)(RING_HDR + cap)) != 0 ? errno : 0;
    if (err == 0) {
      call = "posix_fallocate";
      err = posix_fallocate(fd, 0, (off_t)(RING_HDR + cap));
    }
    if (err) {
      char what[320];
      close(fd);
      shm_unlink(r->name);
      /* ENOSPC names the limit that bit: ipc.limits().shm_free */
      return lipc_error(L, err, call,
                        lipc_shm_what(what, sizeof what, r->name, (long long)(RING_HDR + cap), err));
    }
    err = ring_map(r, fd, cap);
    close(fd);
    if (err) {
      shm_unlink(r->name);
      return lipc_error(L, err, "mmap", r->name);
    }
    r->h.owns = 1;
    r->h.persist = (unsigned char)persist;
  } else {
    err = ring_map(r, -1, cap);
    if (err) return lipc_error(L, err, "mmap", "ring");
  }
  ring_init(r->hdr, cap);
  r->h.open = 1;
  return 1;
}

/* ipc.ring.open(name, {spin=}) -> ring (an existing named ring). */
static int lring_open(lua_State *L) {
  static const char *const allowed[] = { "spin", NULL };
  const char *name = lipc_checkposixname(L, 1, 255);
  lipc_checkoptions(L, 2, allowed);
  int spin = opt_spin(L, 2);
  lring *r = lipc_new(L, &ring_class, 0);
  r->spin = spin;
  r->prod_slot = r->cons_slot = -1;
  snprintf(r->name, sizeof r->name, "%s", name);
  int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return lipc_error(L, errno, "shm_open", name);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return lipc_error(L, err, "fstat", name);
  }
  if (st.st_size < RING_HDR + RING_MIN || (uint64_t)st.st_size > RING_HDR + RING_MAX) {
    close(fd);
    return lipc_error(L, EINVAL, "ring.open", name);
  }
  uint64_t cap = (uint64_t)st.st_size - RING_HDR;
  int err = ring_map(r, fd, cap);
  close(fd);
  if (err) return lipc_error(L, err, "mmap", name);
  ring_hdr *hd = r->hdr;
  if (__atomic_load_n(&hd->magic, __ATOMIC_ACQUIRE) != RING_MAGIC || hd->version != RING_VERSION ||
      hd->capacity != cap || cap % 8 != 0) {
    munmap(r->hdr, r->maplen);
    r->hdr = NULL;
    lua_pushnil(L);
    lua_pushfstring(L, "ring.open %s: not a lipc ring (bad magic, version or size)", name);
    lua_pushinteger(L, EINVAL);
    return 3;
  }
  r->h.open = 1;
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

/* Sleep on the futex word w while it still holds seen, for at most the
 * remaining time (one slice).  0 woken/changed, ETIMEDOUT slice over,
 * EINTR interrupted. */
static int ring_sleep(lipc_deadline *d, _Atomic uint32_t *w, uint32_t seen) {
  struct timespec ts = { 0, SLICE_NS };
  struct timespec left;
  if (lipc_deadline_left(d, &left) == 0 &&
      (left.tv_sec == 0 && left.tv_nsec < SLICE_NS)) ts = left;
  if (ts.tv_sec == 0 && ts.tv_nsec == 0) return ETIMEDOUT;
  long rc = futex(w, FUTEX_WAIT, seen, &ts);
  int err = rc == 0 ? 0 : errno;
  /* a restarted wait may hide the signal: look at the hook every time */
  if (lipc_interrupted(d)) return EINTR;
  return err == ETIMEDOUT ? ETIMEDOUT : 0;
}

/* Take a process-shared lock word (holder pid or 0).  A dead holder's
 * lock is taken over: a send or recv publishes with one final store, so
 * a process that died inside one left the ring consistent.  A lock held
 * by this very process (a call that raised while holding it) is taken
 * back.  0, ETIMEDOUT or EINTR. */
static int ring_lock(lipc_deadline *d, _Atomic uint32_t *lk, _Atomic uint32_t *waiters, uint32_t me) {
  uint32_t cur = 0;
  while (!atomic_compare_exchange_strong(lk, &cur, me)) {
    if (cur == me) return 0;
    atomic_fetch_add(waiters, 1);
    int err = ring_sleep(d, lk, cur);
    atomic_fetch_sub(waiters, 1);
    if (err == EINTR) return EINTR;
    if (err == ETIMEDOUT) {
      uint32_t holder = atomic_load(lk);
      if (holder != 0 && !pid_alive((pid_t)holder)) {
        if (atomic_compare_exchange_strong(lk, &holder, me)) return 0;
      }
      if (lipc_deadline_expired(d)) return ETIMEDOUT;
    }
    cur = 0;
  }
  return 0;
}

/* Release a lock word, waking one waiter if any sleeps. */
static void ring_unlock(_Atomic uint32_t *lk, _Atomic uint32_t *waiters) {
  atomic_store(lk, 0);
  if (atomic_load(waiters)) futex(lk, FUTEX_WAKE, 1, NULL);
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

/* Wait (send lock held) until need bytes are free: 0, or an errno
 * (ETIMEDOUT, EINTR, EPIPE consumers closed, ESRCH consumers died). */
static int wait_space(lring *r, lipc_deadline *d, uint64_t tail, uint64_t need) {
  ring_hdr *hd = r->hdr;
  int spins = r->spin;
  for (;;) {
    uint64_t head = atomic_load_explicit(&hd->head, memory_order_acquire);
    if (r->cap - (tail - head) >= need) return 0;
    if (spins > 0) { spins--; cpu_relax(); continue; }
    uint32_t seen = atomic_load(&hd->head_seq);
    atomic_fetch_add(&hd->send_waiters, 1);
    int err = 0;
    int peers = ring_peers(hd, 1, 0);
    if (peers == 1) err = EPIPE;
    else if (r->cap - (tail - atomic_load(&hd->head)) < need) err = ring_sleep(d, &hd->head_seq, seen);
    atomic_fetch_sub(&hd->send_waiters, 1);
    if (err == ETIMEDOUT) {
      if (r->cap - (tail - atomic_load(&hd->head)) >= need) return 0;
      if (ring_peers(hd, 1, 1) == 2) return ESRCH;
      if (!lipc_deadline_expired(d)) continue;
    }
    if (err) return err;
  }
}

/* ring:send(s, timeout) -> true; blocks while the ring is full. */
static int lring_send(lua_State *L) {
  lring *r = lipc_check(L, 1, &ring_class);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  lipc_deadline d;
  lipc_deadline_init(L, 3, &d);
  uint64_t maxmsg = r->cap - REC_HDR;
  if (maxmsg > UINT32_MAX - 8) maxmsg = UINT32_MAX - 8;
  if (n > maxmsg)
    return luaL_argerror(L, 2, lua_pushfstring(L, "message of %I bytes larger than the ring allows (%I)",
                                               (lua_Integer)n, (lua_Integer)maxmsg));
  ring_hdr *hd = r->hdr;
  pid_t me = my_pid();
  if (r->prod_pid != me) ring_register(L, r, 0, me);
  int err = ring_lock(&d, &hd->send_lock, &hd->send_lock_waiters, (uint32_t)me);
  if (err == 0) {
    r->locks |= LOCK_SEND;
    uint64_t need = REC_HDR + ((n + 7) & ~(uint64_t)7);
    uint64_t tail = atomic_load_explicit(&hd->tail, memory_order_relaxed);
    err = wait_space(r, &d, tail, need);
    if (err == 0) {
      uint32_t rec[2] = { (uint32_t)n, 0 };
      ring_write(r, tail, rec, REC_HDR);
      ring_write(r, tail + REC_HDR, s, n);
      atomic_store_explicit(&hd->tail, tail + need, memory_order_release);
      atomic_fetch_add(&hd->tail_seq, 1);
      if (atomic_load(&hd->recv_waiters)) futex(&hd->tail_seq, FUTEX_WAKE, INT_MAX, NULL);
    }
    ring_unlock(&hd->send_lock, &hd->send_lock_waiters);
    r->locks &= (unsigned char)~LOCK_SEND;
  }
  switch (err) {
    case 0: lua_pushboolean(L, 1); return 1;
    case ETIMEDOUT: return lipc_timeout(L);
    case ESRCH: return peer_gone(L);
    case EPIPE: return lipc_error(L, EPIPE, "ring send", "every consumer closed");
    default: return lipc_error(L, err, "ring send", NULL);
  }
}

/* Wait (recv lock held) until a message is there: 0, 1 end of stream, or
 * an errno (ETIMEDOUT, EINTR, ESRCH producers died); *tailp gets the tail. */
static int wait_data(lring *r, lipc_deadline *d, uint64_t head, uint64_t *tailp) {
  ring_hdr *hd = r->hdr;
  int spins = r->spin;
  for (;;) {
    uint64_t tail = atomic_load_explicit(&hd->tail, memory_order_acquire);
    if (tail != head) { *tailp = tail; return 0; }
    if (spins > 0) { spins--; cpu_relax(); continue; }
    uint32_t seen = atomic_load(&hd->tail_seq);
    atomic_fetch_add(&hd->recv_waiters, 1);
    int err = 0;
    int peers = ring_peers(hd, 0, 0);
    if (atomic_load(&hd->tail) != head) err = 0;
    else if (peers == 1) err = 1;
    else err = ring_sleep(d, &hd->tail_seq, seen);
    atomic_fetch_sub(&hd->recv_waiters, 1);
    if (err == 1 && atomic_load(&hd->tail) != head) continue;  /* sent just before closing */
    if (err == ETIMEDOUT) {
      if (atomic_load(&hd->tail) != head) continue;
      if (ring_peers(hd, 0, 1) == 2) return ESRCH;
      if (!lipc_deadline_expired(d)) continue;
    }
    if (err) return err;
  }
}

/* ring:recv(timeout) -> string; nil at end of stream; blocks while empty. */
static int lring_recv(lua_State *L) {
  lring *r = lipc_check(L, 1, &ring_class);
  lipc_deadline d;
  lipc_deadline_init(L, 2, &d);
  ring_hdr *hd = r->hdr;
  pid_t me = my_pid();
  if (r->cons_pid != me) ring_register(L, r, 1, me);
  int err = ring_lock(&d, &hd->recv_lock, &hd->recv_lock_waiters, (uint32_t)me);
  if (err == 0) {
    r->locks |= LOCK_RECV;
    uint64_t head = atomic_load_explicit(&hd->head, memory_order_relaxed);
    uint64_t tail = head;
    err = wait_data(r, &d, head, &tail);
    if (err == 0) {
      uint32_t rec[2];
      ring_read(r, head, rec, REC_HDR);
      uint64_t n = rec[0];
      uint64_t need = REC_HDR + ((n + 7) & ~(uint64_t)7);
      if (n > r->cap - REC_HDR || need > tail - head) {
        err = EBADMSG;
      } else {
        /* may raise (memory): the lock is then taken back by our next call */
        luaL_Buffer b;
        char *dst = luaL_buffinitsize(L, &b, (size_t)n);
        ring_read(r, head + REC_HDR, dst, (size_t)n);
        luaL_pushresultsize(&b, (size_t)n);
        atomic_store_explicit(&hd->head, head + need, memory_order_release);
        atomic_fetch_add(&hd->head_seq, 1);
        if (atomic_load(&hd->send_waiters)) futex(&hd->head_seq, FUTEX_WAKE, INT_MAX, NULL);
      }
    }
    ring_unlock(&hd->recv_lock, &hd->recv_lock_waiters);
    r->locks &= (unsigned char)~LOCK_RECV;
  }
  switch (err) {
    case 0: return 1;
    case 1: lua_pushnil(L); return 1;
    case ETIMEDOUT: return lipc_timeout(L);
    case ESRCH: return peer_gone(L);
    case EBADMSG: return lipc_error(L, EBADMSG, "ring recv", "corrupted ring");
    default: return lipc_error(L, err, "ring recv", NULL);
  }
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
  if (r->name[0]) lua_pushstring(L, r->name);
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
  if (!r->name[0]) return luaL_error(L, "an anonymous lipc.ring has no name to unlink");
  if (shm_unlink(r->name) != 0) return lipc_error(L, errno, "shm_unlink", r->name);
  r->h.owns = 0;
  lua_pushboolean(L, 1);
  return 1;
}

/* ipc.ring.unlink(name) -> true. */
static int lring_unlink_name(lua_State *L) {
  const char *name = lipc_checkposixname(L, 1, 255);
  if (shm_unlink(name) != 0) return lipc_error(L, errno, "shm_unlink", name);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg methods[] = {
  {"send", lring_send},
  {"recv", lring_recv},
  {"capacity", lring_capacity},
  {"name", lring_name},
  {"pending", lring_pending},
  {"unlink", lring_unlink},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"create", lring_create},
  {"open", lring_open},
  {"unlink", lring_unlink_name},
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
