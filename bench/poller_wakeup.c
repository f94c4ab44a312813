/*
 * poller_wakeup.c - raw C baseline: how fast epoll_wait wakes up on the one
 * active descriptor among many idle ones.  A 64-byte ping-pong over two
 * pipes with a forked echo child; the parent waits for the answer in
 * epoll_wait on a set holding the answer pipe plus 10, then 1000, idle
 * pipes (bench/poller_wakeup.lua does the same through ipc.poller).  The
 * two medians should be about equal: epoll's cost does not grow with idle
 * descriptors.  The same again with the active pair made of two eventfds
 * (metrics poller_efd_*), which isolates the poller from the pipe layer.
 * Prints median and p99 in microseconds per set size.
 *   BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "pingpong.h"

#define MSG 64

/* One measurement with `idle` idle pipes in the set, the active pair made
 * of pipes or (efd) eventfds; 0 on success. */
static int run(int idle, int efd) {
  pp_rtt b = pp_rtt_init();
  int ep = epoll_create1(EPOLL_CLOEXEC);
  int (*idle_fds)[2] = malloc(sizeof *idle_fds * (size_t)idle);
  if (ep < 0 || !idle_fds) { perror("setup"); return 1; }
  struct epoll_event ev = { .events = EPOLLIN };
  for (int i = 0; i < idle; i++) {
    if (pipe2(idle_fds[i], O_CLOEXEC)) { perror("pipe"); return 1; }
    ev.data.fd = idle_fds[i][0];
    if (epoll_ctl(ep, EPOLL_CTL_ADD, idle_fds[i][0], &ev)) { perror("epoll_ctl"); return 1; }
  }
  int to_child[2], to_parent[2];
  if (efd) {
    to_child[0] = to_child[1] = eventfd(0, EFD_CLOEXEC);
    to_parent[0] = to_parent[1] = eventfd(0, EFD_CLOEXEC);
    if (to_child[0] < 0 || to_parent[0] < 0) { perror("eventfd"); return 1; }
  } else if (pipe2(to_child, O_CLOEXEC) || pipe2(to_parent, O_CLOEXEC)) {
    perror("pipe");
    return 1;
  }
  int len = efd ? 8 : MSG;   /* an eventfd moves one 8-byte counter */
  ev.data.fd = to_parent[0];
  if (epoll_ctl(ep, EPOLL_CTL_ADD, to_parent[0], &ev)) { perror("epoll_ctl"); return 1; }
  pid_t pid = pp_fork();
  char buf[MSG];
  if (pid == 0) {
    if (efd) {
      uint64_t v;
      for (int i = 0; i < b.total; i++)
        if (read(to_child[0], &v, 8) != 8 || write(to_parent[1], &v, 8) != 8) _exit(1);
      _exit(0);
    }
    close(to_child[1]); close(to_parent[0]);
    for (;;) {
      ssize_t n = read(to_child[0], buf, MSG);
      if (n <= 0) _exit(n == 0 ? 0 : 1);
      if (write(to_parent[1], buf, (size_t)n) != n) _exit(1);
    }
  }
  if (!efd) { close(to_child[0]); close(to_parent[1]); }
  char msg[MSG];
  memset(msg, 'x', MSG);
  if (efd) { uint64_t one = 1; memcpy(msg, &one, 8); }
  struct epoll_event got[64];
  for (int i = 0; i < b.total; i++) {
    long long t0 = pp_now_ns();
    if (write(to_child[1], msg, (size_t)len) != len) { perror("write"); return 1; }
    int n = epoll_wait(ep, got, 64, -1);
    if (n != 1 || got[0].data.fd != to_parent[0]) { fprintf(stderr, "bad wake-up\n"); return 1; }
    if (read(to_parent[0], buf, (size_t)len) != len) { perror("read"); return 1; }
    pp_rtt_record(&b, i, t0);
  }
  close(to_child[1]);
  if (pp_reap(pid, "child")) return 1;
  close(to_parent[0]);   /* (the same descriptor as to_parent[1] for eventfds) */
  for (int i = 0; i < idle; i++) { close(idle_fds[i][0]); close(idle_fds[i][1]); }
  close(ep);
  char key[64];
  snprintf(key, sizeof key, "poller_%sidle%d", efd ? "efd_" : "", idle);
  pp_rtt_report(&b, key, NULL);
  free(idle_fds);
  return 0;
}

int main(void) {
  if (run(10, 0) || run(1000, 0)) return 1;
  if (run(10, 1) || run(1000, 1)) return 1;
  printf("target poller_idle10_rtt_median <=1.15\n");
  printf("target poller_idle1000_rtt_median <=1.15\n");
  printf("target poller_efd_idle10_rtt_median <=1.15\n");
  printf("target poller_efd_idle1000_rtt_median <=1.15\n");
  return 0;
}
