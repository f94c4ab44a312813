/*
 * atomic_add.c - raw C baseline: rate of 64-bit atomic adds
 * (__atomic_add_fetch, seq_cst) on a shared anonymous mapping, one process
 * (bench/atomic_add.lua does r:add).  BENCH_OPS (default 20000000).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

/* Monotonic time in seconds. */
static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void) {
  const char *e = getenv("BENCH_OPS");
  long ops = e && *e ? atol(e) : 20000000L;
  int64_t *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) { perror("mmap"); return 1; }
  double t0 = now();
  for (long i = 0; i < ops; i++) __atomic_add_fetch(p, 1, __ATOMIC_SEQ_CST);
  double t1 = now();
  if (*p != ops) return 1;
  printf("metric atomic_add_rate %.2f Mops/s higher\n", ops / (t1 - t0) / 1e6);
  munmap(p, 4096);
  return 0;
}
