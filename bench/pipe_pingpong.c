/*
 * pipe_pingpong.c - raw C baseline: round trip of a 64-byte message over
 * two pipes between a parent and its forked child (bench/pipe_pingpong.lua
 * does the same through lipc).  Prints median and p99 in microseconds.
 *   BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG 64

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

/* Child: echo every 64-byte message back until end of stream. */
static void echo(int in, int out) {
  char buf[MSG];
  for (;;) {
    ssize_t n = read(in, buf, MSG);
    if (n <= 0) _exit(n == 0 ? 0 : 1);
    if (write(out, buf, (size_t)n) != n) _exit(1);
  }
}

int main(void) {
  int iters = env_int("BENCH_ITERS", 20000), warm = env_int("BENCH_WARMUP", 2000);
  int to_child[2], to_parent[2];
  if (pipe2(to_child, O_CLOEXEC) || pipe2(to_parent, O_CLOEXEC)) { perror("pipe"); return 1; }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) { perror("fork"); return 1; }
  if (pid == 0) {
    close(to_child[1]); close(to_parent[0]);
    echo(to_child[0], to_parent[1]);
  }
  close(to_child[0]); close(to_parent[1]);
  long long *rtt = malloc(sizeof *rtt * (size_t)iters);
  if (!rtt) return 1;
  char msg[MSG], buf[MSG];
  memset(msg, 'x', MSG);
  for (int i = 0; i < warm + iters; i++) {
    long long t0 = now_ns();
    if (write(to_child[1], msg, MSG) != MSG) { perror("write"); return 1; }
    if (read(to_parent[0], buf, MSG) != MSG) { perror("read"); return 1; }
    long long t1 = now_ns();
    if (i >= warm) rtt[i - warm] = t1 - t0;
  }
  close(to_child[1]);
  int status;
  if (read(to_parent[0], buf, MSG) != 0 || waitpid(pid, &status, 0) != pid || status != 0) {
    fprintf(stderr, "child failed\n");
    return 1;
  }
  qsort(rtt, (size_t)iters, sizeof *rtt, cmp_ll);
  printf("metric pipe_rtt_median %.3f us lower\n", rtt[iters / 2] / 1e3);
  printf("metric pipe_rtt_p99 %.3f us lower\n", rtt[(int)ceil(iters * 0.99) - 1] / 1e3);
  printf("target pipe_rtt_median <=1.15\n");
  free(rtt);
  return 0;
}
