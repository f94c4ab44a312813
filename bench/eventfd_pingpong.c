/*
 * eventfd_pingpong.c - raw C baseline: round trip through two eventfds
 * between a parent and its forked child (the parent adds 1 to "ping", the
 * child takes it and adds 1 to "pong", the parent takes that);
 * bench/eventfd_pingpong.lua does the same through lipc.  Blocking reads,
 * as a C programmer would write it.  Prints median and p99 in microseconds.
 *   BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/eventfd.h>

#include "pingpong.h"

/* the metric key and target (bench/task_pingpong.c reports the same work as "task") */
#ifndef PP_KEY
#define PP_KEY "eventfd"
#define PP_TARGET "<=1.15"
#endif

int main(void) {
  pp_rtt b = pp_rtt_init();
  int ping = eventfd(0, EFD_CLOEXEC), pong = eventfd(0, EFD_CLOEXEC);
  if (ping < 0 || pong < 0) { perror("eventfd"); return 1; }
  pid_t pid = pp_fork();
  if (pid == 0) {
    uint64_t v;
    for (int i = 0; i < b.total; i++) {
      if (read(ping, &v, sizeof v) != sizeof v) _exit(1);
      if (write(pong, &v, sizeof v) != sizeof v) _exit(1);
    }
    _exit(0);
  }
  uint64_t one = 1, v;
  for (int i = 0; i < b.total; i++) {
    long long t0 = pp_now_ns();
    if (write(ping, &one, sizeof one) != sizeof one) { perror("write"); return 1; }
    if (read(pong, &v, sizeof v) != sizeof v) { perror("read"); return 1; }
    pp_rtt_record(&b, i, t0);
  }
  if (pp_reap(pid, "child")) return 1;
  pp_rtt_report(&b, PP_KEY, PP_TARGET);
  return 0;
}
