/*
 * msg_pingpong.c - raw C baseline: round trip of a 64-byte message over one
 * System V message queue between a parent and its forked child, type 1
 * towards the child and type 2 back (bench/msg_pingpong.lua does the same
 * through lipc).  Prints median and p99 in microseconds.
 *   BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG 64

struct message { long mtype; char mtext[MSG]; };

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
  int id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  if (id < 0) { perror("msgget"); return 1; }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) { perror("fork"); return 1; }
  if (pid == 0) {  /* echo type 1 as type 2 until an empty message */
    struct message m;
    for (;;) {
      ssize_t n = msgrcv(id, &m, MSG, 1, 0);
      if (n <= 0) _exit(n == 0 ? 0 : 1);
      m.mtype = 2;
      if (msgsnd(id, &m, (size_t)n, 0) != 0) _exit(1);
    }
  }
  long long *rtt = malloc(sizeof *rtt * (size_t)iters);
  if (!rtt) return 1;
  struct message out = { .mtype = 1 }, in;
  memset(out.mtext, 'x', MSG);
  for (int i = 0; i < warm + iters; i++) {
    long long t0 = now_ns();
    if (msgsnd(id, &out, MSG, 0) != 0) { perror("msgsnd"); return 1; }
    if (msgrcv(id, &in, MSG, 2, 0) != MSG) { perror("msgrcv"); return 1; }
    long long t1 = now_ns();
    if (i >= warm) rtt[i - warm] = t1 - t0;
  }
  int status;
  if (msgsnd(id, &out, 0, 0) != 0 || waitpid(pid, &status, 0) != pid || status != 0) {
    fprintf(stderr, "child failed\n");
    return 1;
  }
  msgctl(id, IPC_RMID, NULL);
  qsort(rtt, (size_t)iters, sizeof *rtt, cmp_ll);
  printf("metric msg_rtt_median %.3f us lower\n", rtt[iters / 2] / 1e3);
  printf("metric msg_rtt_p99 %.3f us lower\n", rtt[(int)ceil(iters * 0.99) - 1] / 1e3);
  printf("target msg_rtt_median <=1.15\n");
  free(rtt);
  return 0;
}
