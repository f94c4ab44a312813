/*
 * mq_pingpong.c - raw C baseline: round trip of a 64-byte message over two
 * POSIX message queues between a parent and its forked child
 * (bench/mq_pingpong.lua does the same through lipc).  Prints median and
 * p99 in microseconds.
 *   BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <math.h>
#include <mqueue.h>
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

/* Create a queue of 10 x 64-byte messages under a unique name, unlinked
 * at once (the descriptor is inherited by the child). */
static mqd_t make_queue(int n) {
  char name[64];
  snprintf(name, sizeof name, "/mq_pingpong.%d.%d", (int)getpid(), n);
  struct mq_attr a = { .mq_maxmsg = 10, .mq_msgsize = MSG };
  mqd_t q = mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &a);
  if (q == (mqd_t)-1) { perror("mq_open"); exit(1); }
  mq_unlink(name);
  return q;
}

int main(void) {
  int iters = env_int("BENCH_ITERS", 20000), warm = env_int("BENCH_WARMUP", 2000);
  mqd_t to_child = make_queue(1), to_parent = make_queue(2);
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) { perror("fork"); return 1; }
  if (pid == 0) {  /* echo until an empty message */
    char buf[MSG];
    unsigned prio;
    for (;;) {
      ssize_t n = mq_receive(to_child, buf, MSG, &prio);
      if (n <= 0) _exit(n == 0 ? 0 : 1);
      if (mq_send(to_parent, buf, (size_t)n, 0) != 0) _exit(1);
    }
  }
  long long *rtt = malloc(sizeof *rtt * (size_t)iters);
  if (!rtt) return 1;
  char msg[MSG], buf[MSG];
  memset(msg, 'x', MSG);
  for (int i = 0; i < warm + iters; i++) {
    long long t0 = now_ns();
    if (mq_send(to_child, msg, MSG, 0) != 0) { perror("mq_send"); return 1; }
    if (mq_receive(to_parent, buf, MSG, NULL) != MSG) { perror("mq_receive"); return 1; }
    long long t1 = now_ns();
    if (i >= warm) rtt[i - warm] = t1 - t0;
  }
  int status;
  if (mq_send(to_child, msg, 0, 0) != 0 || waitpid(pid, &status, 0) != pid || status != 0) {
    fprintf(stderr, "child failed\n");
    return 1;
  }
  mq_close(to_child);
  mq_close(to_parent);
  qsort(rtt, (size_t)iters, sizeof *rtt, cmp_ll);
  printf("metric mq_rtt_median %.3f us lower\n", rtt[iters / 2] / 1e3);
  printf("metric mq_rtt_p99 %.3f us lower\n", rtt[(int)ceil(iters * 0.99) - 1] / 1e3);
  printf("target mq_rtt_median <=1.15\n");
  free(rtt);
  return 0;
}
