/*
 * shm_bandwidth.c - raw C baseline: copy 64 KiB blocks into a shared
 * anonymous mapping (memcpy in) and out of it (memcpy into a fresh buffer),
 * in MB/s (bench/shm_bandwidth.lua does r:write / r:read of 64 KiB strings).
 *   BENCH_ROUNDS (default 40000) blocks each way.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define BLOCK 65536
#define SLOTS 16

/* Monotonic time in seconds. */
static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* An integer from the environment, or def. */
static int env_int(const char *name, int def) {
  const char *s = getenv(name);
  return s && *s ? atoi(s) : def;
}

int main(void) {
  int rounds = env_int("BENCH_ROUNDS", 40000);
  unsigned char *m = mmap(NULL, BLOCK * SLOTS, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) { perror("mmap"); return 1; }
  char *src = malloc(BLOCK);
  if (!src) return 1;
  memset(src, 'x', BLOCK);
  memset(m, 0, BLOCK * SLOTS);
  volatile unsigned sink = 0;
  double t0 = now();
  for (int i = 0; i < rounds; i++) {
    memcpy(m + (size_t)(i % SLOTS) * BLOCK, src, BLOCK);
    __asm__ volatile("" ::: "memory");
  }
  double t1 = now();
  for (int i = 0; i < rounds; i++) {
    char *dst = malloc(BLOCK);  /* a fresh buffer each time, as a new Lua string */
    if (!dst) return 1;
    memcpy(dst, m + (size_t)(i % SLOTS) * BLOCK, BLOCK);
    __asm__ volatile("" ::: "memory");
    sink += (unsigned char)dst[i % BLOCK];
    free(dst);
  }
  double t2 = now();
  double mb = (double)rounds * BLOCK / 1e6;
  printf("metric shm_write_64k %.0f MB/s higher\n", mb / (t1 - t0));
  printf("metric shm_read_64k %.0f MB/s higher\n", mb / (t2 - t1));
  free(src);
  munmap(m, BLOCK * SLOTS);
  return sink == 12345 ? 1 : 0;
}
