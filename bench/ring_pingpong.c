/*
 * ring_pingpong.c - raw C baseline for bench/ring_pingpong.lua: round trip
 * of a 64-byte message between a parent and its forked child over two
 * minimal single-producer/single-consumer shared-memory rings with futex
 * wake-ups (FUTEX_WAKE only when the reader counted itself as sleeping,
 * the same fast path as lipc.ring, without its locks and checks).
 *   BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
 */
#define _GNU_SOURCE
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "pingpong.h"

#define MSG 64
#define CAP 4096

/* One SPSC ring: counters on their own cache lines, then the bytes. */
typedef struct ring {
  _Atomic uint64_t tail;
  _Atomic uint32_t seq, waiters;
  char pad[48];
  _Atomic uint64_t head;
  char pad2[56];
  unsigned char data[CAP];
} ring;

/* Shared futex call. */
static long futex(_Atomic uint32_t *w, int op, uint32_t v) {
  return syscall(SYS_futex, (uint32_t *)w, op, v, NULL, NULL, 0);
}

/* Copy n bytes into the ring at offset off, wrapping at the end. */
static void wr(ring *r, size_t off, const void *src, size_t n) {
  size_t first = CAP - off < n ? CAP - off : n;
  memcpy(r->data + off, src, first);
  memcpy(r->data, (const char *)src + first, n - first);
}

/* Copy n bytes out of the ring at offset off, wrapping at the end. */
static void rd(ring *r, size_t off, void *dst, size_t n) {
  size_t first = CAP - off < n ? CAP - off : n;
  memcpy(dst, r->data + off, first);
  memcpy((char *)dst + first, r->data, n - first);
}

/* Append a length-prefixed message (the ring never fills in a ping-pong). */
static void put(ring *r, const void *m, uint32_t n) {
  uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
  size_t off = t % CAP, rec = 8 + ((n + 7u) & ~7u);
  memcpy(r->data + off, &n, 4);
  wr(r, (off + 8) % CAP, m, n);
  atomic_store_explicit(&r->tail, t + rec, memory_order_release);
  atomic_fetch_add(&r->seq, 1);
  if (atomic_load(&r->waiters)) futex(&r->seq, FUTEX_WAKE, INT_MAX);
}

/* Take the next message into buf, sleeping while the ring is empty. */
static uint32_t get(ring *r, void *buf) {
  uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
  while (atomic_load_explicit(&r->tail, memory_order_acquire) == h) {
    uint32_t seen = atomic_load(&r->seq);
    atomic_fetch_add(&r->waiters, 1);
    if (atomic_load(&r->tail) == h) futex(&r->seq, FUTEX_WAIT, seen);
    atomic_fetch_sub(&r->waiters, 1);
  }
  uint32_t n;
  size_t off = h % CAP;
  memcpy(&n, r->data + off, 4);
  rd(r, (off + 8) % CAP, buf, n);
  atomic_store_explicit(&r->head, h + 8 + ((n + 7u) & ~7u), memory_order_release);
  return n;
}

int main(void) {
  pp_rtt b = pp_rtt_init();
  ring *rings = mmap(NULL, 2 * sizeof(ring), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (rings == MAP_FAILED) { perror("mmap"); return 1; }
  ring *to_child = &rings[0], *to_parent = &rings[1];
  pid_t pid = pp_fork();
  char buf[MSG];
  if (pid == 0) {
    for (;;) {
      uint32_t n = get(to_child, buf);
      if (n == 0) _exit(0);
      put(to_parent, buf, n);
    }
  }
  char msg[MSG];
  memset(msg, 'x', MSG);
  for (int i = 0; i < b.total; i++) {
    long long t0 = pp_now_ns();
    put(to_child, msg, MSG);
    if (get(to_parent, buf) != MSG) { fprintf(stderr, "bad echo\n"); return 1; }
    pp_rtt_record(&b, i, t0);
  }
  put(to_child, msg, 0);   /* an empty message ends the child */
  if (pp_reap(pid, "child")) return 1;
  pp_rtt_report(&b, "ring", "<=1.5");
  return 0;
}
