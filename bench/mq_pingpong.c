/*
 * mq_pingpong.c - raw C baseline: round trip of a 64-byte message over two
 * POSIX message queues between a parent and its forked child
 * (bench/mq_pingpong.lua does the same through lipc).  Prints median and
 * p99 in microseconds.
 *   BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <mqueue.h>
#include <string.h>

#include "pingpong.h"

#define MSG 64

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
  pp_rtt b = pp_rtt_init();
  mqd_t to_child = make_queue(1), to_parent = make_queue(2);
  pid_t pid = pp_fork();
  if (pid == 0) {  /* echo until an empty message */
    char buf[MSG];
    unsigned prio;
    for (;;) {
      ssize_t n = mq_receive(to_child, buf, MSG, &prio);
      if (n <= 0) _exit(n == 0 ? 0 : 1);
      if (mq_send(to_parent, buf, (size_t)n, 0) != 0) _exit(1);
    }
  }
  char msg[MSG], buf[MSG];
  memset(msg, 'x', MSG);
  for (int i = 0; i < b.total; i++) {
    long long t0 = pp_now_ns();
    if (mq_send(to_child, msg, MSG, 0) != 0) { perror("mq_send"); return 1; }
    if (mq_receive(to_parent, buf, MSG, NULL) != MSG) { perror("mq_receive"); return 1; }
    pp_rtt_record(&b, i, t0);
  }
  if (mq_send(to_child, msg, 0, 0) != 0) { perror("mq_send"); return 1; }
  if (pp_reap(pid, "child")) return 1;
  mq_close(to_child);
  mq_close(to_parent);
  pp_rtt_report(&b, "mq", "<=1.15");
  return 0;
}
