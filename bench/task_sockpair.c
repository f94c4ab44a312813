/*
 * task_sockpair.c - raw C baseline of bench/task_sockpair.lua: round trip
 * of a 64-byte message over a stream socketpair between a parent and its
 * forked child that echoes it, both with blocking send/recv, as a C
 * programmer would write it (bench/task_sockpair.lua does it from a task in
 * ipc.loop, and blocking, for the ratio task/blocking).  Prints median and
 * p99 in microseconds.
 *   BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
 */
#define _GNU_SOURCE
#include <string.h>
#include <sys/socket.h>

#include "pingpong.h"

#define MSG 64

/* Read exactly n bytes; 0 at end of stream, -1 on error, n when done. */
static ssize_t recv_all(int fd, char *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = recv(fd, buf + got, n - got, 0);
    if (r <= 0) return r;
    got += (size_t)r;
  }
  return (ssize_t)got;
}

int main(void) {
  pp_rtt b = pp_rtt_init();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) { perror("socketpair"); return 1; }
  pid_t pid = pp_fork();
  if (pid == 0) {
    close(sv[0]);
    char buf[MSG];
    for (;;) {
      ssize_t n = recv_all(sv[1], buf, MSG);
      if (n <= 0) _exit(n == 0 ? 0 : 1);
      if (send(sv[1], buf, MSG, MSG_NOSIGNAL) != MSG) _exit(1);
    }
  }
  close(sv[1]);
  char msg[MSG], buf[MSG];
  memset(msg, 'x', MSG);
  for (int i = 0; i < b.total; i++) {
    long long t0 = pp_now_ns();
    if (send(sv[0], msg, MSG, MSG_NOSIGNAL) != MSG) { perror("send"); return 1; }
    if (recv_all(sv[0], buf, MSG) != MSG) { perror("recv"); return 1; }
    pp_rtt_record(&b, i, t0);
  }
  close(sv[0]);
  if (pp_reap(pid, "child")) return 1;
  pp_rtt_report(&b, "task_sock", NULL);
  return 0;
}
