/*
 * task_pingpong.c - raw C baseline of bench/task_pingpong.lua: round trip
 * through two eventfds between a parent and its forked child (the parent
 * adds 1 to "ping", the child takes it and adds 1 to "pong", the parent
 * takes that); bench/task_pingpong.lua does it from a task in ipc.loop (and
 * blocking, for the ratio task/blocking).  Blocking reads, as a C
 * programmer would write it.  Prints median and p99 in microseconds.
 *   BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/eventfd.h>

#include "pingpong.h"

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
  pp_rtt_report(&b, "task", NULL);
  return 0;
}
