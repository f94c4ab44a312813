/*
 * bench/lib/pingpong.h - what the raw C round-trip baselines share: the
 * clock, BENCH_ITERS / BENCH_WARMUP, the fork of the echo child, its reaping
 * and the median / p99 report (see bench/README.md for the protocol).
 * Header-only (static inline); bench/run.sh compiles with -Ibench/lib.
 *
 * A benchmark's timed loop stays in its own file, so that it shows exactly
 * the system calls it makes:
 *
 *   pp_rtt b = pp_rtt_init();
 *   pid_t pid = pp_fork();
 *   if (pid == 0) { ...echo...; _exit(0); }
 *   for (int i = 0; i < b.total; i++) {
 *     long long t0 = pp_now_ns();
 *     ...one round trip...
 *     pp_rtt_record(&b, i, t0);
 *   }
 *   if (pp_reap(pid, "child")) return 1;
 *   pp_rtt_report(&b, "family", "<=1.15");
 */
#ifndef LIPC_BENCH_PINGPONG_H
#define LIPC_BENCH_PINGPONG_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Monotonic time in nanoseconds. */
static inline long long pp_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* An integer from the environment, or def. */
static inline int pp_env_int(const char *name, int def) {
  const char *s = getenv(name);
  return s && *s ? atoi(s) : def;
}

/* qsort comparator for long long. */
static inline int pp_cmp_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return (x > y) - (x < y);
}

/* The round-trip times of one measurement: `iters` timed ones after `warm`. */
typedef struct pp_rtt {
  int iters, warm, total;  /* total = warm + iters */
  long long *rtt;          /* iters nanosecond figures */
} pp_rtt;

/* A measurement sized by BENCH_ITERS (20000) and BENCH_WARMUP (2000); exits
 * on allocation failure. */
static inline pp_rtt pp_rtt_init(void) {
  pp_rtt b;
  b.iters = pp_env_int("BENCH_ITERS", 20000);
  b.warm = pp_env_int("BENCH_WARMUP", 2000);
  b.total = b.warm + b.iters;
  b.rtt = malloc(sizeof *b.rtt * (size_t)b.iters);
  if (!b.rtt) { perror("malloc"); exit(1); }
  return b;
}

/* End round trip i (0-based, warm-up included) that started at t0. */
static inline void pp_rtt_record(pp_rtt *b, int i, long long t0) {
  long long t1 = pp_now_ns();
  if (i >= b->warm) b->rtt[i - b->warm] = t1 - t0;
}

/* Print `metric <key>_rtt_median` and `_rtt_p99` in microseconds (median
 * element n/2, p99 element ceil(0.99 n) - 1 of the sorted figures), and
 * `target <key>_rtt_median <target>` unless target is NULL; frees b. */
static inline void pp_rtt_report(pp_rtt *b, const char *key, const char *target) {
  int n = b->iters;
  qsort(b->rtt, (size_t)n, sizeof *b->rtt, pp_cmp_ll);
  printf("metric %s_rtt_median %.3f us lower\n", key, b->rtt[n / 2] / 1e3);
  printf("metric %s_rtt_p99 %.3f us lower\n", key, b->rtt[(int)ceil(n * 0.99) - 1] / 1e3);
  if (target) printf("target %s_rtt_median %s\n", key, target);
  fflush(stdout);
  free(b->rtt);
  b->rtt = NULL;
}

/* fork() with stdio flushed first; exits on failure. */
static inline pid_t pp_fork(void) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) { perror("fork"); exit(1); }
  return pid;
}

/* Wait for the echo child; 0 when it exited 0, else 1 with "<what> failed". */
static inline int pp_reap(pid_t pid, const char *what) {
  int status;
  if (waitpid(pid, &status, 0) != pid || status != 0) {
    fprintf(stderr, "%s failed\n", what);
    return 1;
  }
  return 0;
}

#endif
