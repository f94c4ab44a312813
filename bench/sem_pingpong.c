/*
 * sem_pingpong.c - raw C baseline: round trip between a parent and its forked
 * child through two unnamed process-shared POSIX semaphores (sem_init
 * pshared = 1) in an anonymous shared mapping: the parent posts "ping" and
 * waits "pong" (bench/sem_pingpong.lua does the same through lipc).
 *   BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
 */
#define _GNU_SOURCE
#include <math.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Monotonic time in nanoseconds. */
static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* qsort comparator for long long. */
static int cmp_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return (x > y) - (x < y);
}

/* An integer from the environment, or def. */
static int env_int(const char *name, int def) {
  const char *s = getenv(name);
  return s && *s ? atoi(s) : def;
}

int main(void) {
  int iters = env_int("BENCH_ITERS", 20000), warm = env_int("BENCH_WARMUP", 2000);
  unsigned char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) { perror("mmap"); return 1; }
  sem_t *ping = (sem_t *)m, *pong = (sem_t *)(m + 64);
  if (sem_init(ping, 1, 0) != 0 || sem_init(pong, 1, 0) != 0) { perror("sem_init"); return 1; }
  int total = warm + iters;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) { perror("fork"); return 1; }
  if (pid == 0) {
    for (int i = 0; i < total; i++) {
      if (sem_wait(ping) != 0 || sem_post(pong) != 0) _exit(1);
    }
    _exit(0);
  }
  long long *rtt = malloc(sizeof *rtt * (size_t)iters);
  if (!rtt) return 1;
  for (int i = 0; i < total; i++) {
    long long t0 = now_ns();
    if (sem_post(ping) != 0 || sem_wait(pong) != 0) { perror("sem"); return 1; }
    long long t1 = now_ns();
    if (i >= warm) rtt[i - warm] = t1 - t0;
  }
  int status;
  if (waitpid(pid, &status, 0) != pid || status != 0) { fprintf(stderr, "child failed\n"); return 1; }
  qsort(rtt, (size_t)iters, sizeof *rtt, cmp_ll);
  printf("metric sem_rtt_median %.3f us lower\n", rtt[iters / 2] / 1e3);
  printf("metric sem_rtt_p99 %.3f us lower\n", rtt[(int)ceil(iters * 0.99) - 1] / 1e3);
  printf("target sem_rtt_median <=1.15\n");
  free(rtt);
  munmap(m, 4096);
  return 0;
}
