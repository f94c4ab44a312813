/*
 * eventfd_pingpong.c - raw C baseline: round trip through two eventfds
 * between a parent and its forked child (the parent adds 1 to "ping", the
 * child takes it and adds 1 to "pong", the parent takes that);
 * bench/eventfd_pingpong.lua does the same through lipc.  Blocking reads,
 * as a C programmer would write it.  Prints median and p99 in microseconds.
 *   BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
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
  int ping = eventfd(0, EFD_CLOEXEC), pong = eventfd(0, EFD_CLOEXEC);
  if (ping < 0 || pong < 0) { perror("eventfd"); return 1; }
  int total = warm + iters;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) { perror("fork"); return 1; }
  if (pid == 0) {
    uint64_t v;
    for (int i = 0; i < total; i++) {
      if (read(ping, &v, sizeof v) != sizeof v) _exit(1);
      if (write(pong, &v, sizeof v) != sizeof v) _exit(1);
    }
    _exit(0);
  }
  long long *rtt = malloc(sizeof *rtt * (size_t)iters);
  if (!rtt) return 1;
  uint64_t one = 1, v;
  for (int i = 0; i < total; i++) {
    long long t0 = now_ns();
    if (write(ping, &one, sizeof one) != sizeof one) { perror("write"); return 1; }
    if (read(pong, &v, sizeof v) != sizeof v) { perror("read"); return 1; }
    long long t1 = now_ns();
    if (i >= warm) rtt[i - warm] = t1 - t0;
  }
  int status;
  if (waitpid(pid, &status, 0) != pid || status != 0) { fprintf(stderr, "child failed\n"); return 1; }
  qsort(rtt, (size_t)iters, sizeof *rtt, cmp_ll);
  printf("metric eventfd_rtt_median %.3f us lower\n", rtt[iters / 2] / 1e3);
  printf("metric eventfd_rtt_p99 %.3f us lower\n", rtt[(int)ceil(iters * 0.99) - 1] / 1e3);
  printf("target eventfd_rtt_median <=1.15\n");
  free(rtt);
  return 0;
}
