/*
 * sock_pingpong.c - raw C baseline: round trip of a 64-byte message between
 * a parent and its forked child over four kinds of socket: a Unix stream
 * socket (listen/connect on a path), a socketpair, TCP on 127.0.0.1 with
 * TCP_NODELAY, and UDP on 127.0.0.1 (bench/sock_pingpong.lua does the same
 * through lipc).  Prints median and p99 in microseconds for each.
 *   BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "pingpong.h"

#define MSG 64

/* Read exactly n bytes (stream); 0 at end of stream, -1 on error, n when done. */
static ssize_t recv_all(int fd, char *buf, size_t n, int stream) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = recv(fd, buf + got, n - got, 0);
    if (r <= 0) return r;
    got += (size_t)r;
    if (!stream) break;
  }
  return (ssize_t)got;
}

/* Child: echo every message back until end of stream (or a 0-byte datagram). */
static void echo(int fd, int stream) {
  char buf[MSG];
  for (;;) {
    ssize_t n = recv_all(fd, buf, MSG, stream);
    if (n <= 0) _exit(n == 0 ? 0 : 1);
    if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n) _exit(1);
  }
}

/* Time the round trips over fd (the child echoes on its own socket). */
static int run(const char *key, int fd, int stream, pid_t pid) {
  pp_rtt b = pp_rtt_init();
  char msg[MSG], buf[MSG];
  memset(msg, 'x', MSG);
  for (int i = 0; i < b.total; i++) {
    long long t0 = pp_now_ns();
    if (send(fd, msg, MSG, MSG_NOSIGNAL) != MSG) { perror("send"); return 1; }
    if (recv_all(fd, buf, MSG, stream) != MSG) { perror("recv"); return 1; }
    pp_rtt_record(&b, i, t0);
  }
  if (stream) shutdown(fd, SHUT_WR);
  else send(fd, "", 0, 0);
  if (pp_reap(pid, key)) return 1;
  close(fd);
  pp_rtt_report(&b, key, "<=1.15");
  return 0;
}

/* Fork a child that echoes on child_fd; the parent closes it. */
static pid_t fork_echo(int child_fd, int parent_fd, int stream) {
  pid_t pid = pp_fork();
  if (pid == 0) {
    if (parent_fd >= 0) close(parent_fd);
    echo(child_fd, stream);
  }
  close(child_fd);
  return pid;
}

int main(void) {
  int one = 1;

  /* Unix stream socket on a path */
  struct sockaddr_un un = { .sun_family = AF_UNIX };
  snprintf(un.sun_path, sizeof un.sun_path, "/tmp/sock_pingpong.%d.sock", (int)getpid());
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&un, sizeof un) || listen(lfd, 8)) { perror("unix"); return 1; }
  int cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(cfd, (struct sockaddr *)&un, sizeof un)) { perror("connect"); return 1; }
  int afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  close(lfd);
  unlink(un.sun_path);
  pid_t pid = fork_echo(afd, cfd, 1);
  if (run("sock_unix", cfd, 1, pid)) return 1;

  /* socketpair */
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) { perror("socketpair"); return 1; }
  pid = fork_echo(sv[1], sv[0], 1);
  if (run("sock_pair", sv[0], 1, pid)) return 1;

  /* TCP loopback with TCP_NODELAY */
  struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  socklen_t il = sizeof in;
  lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, (struct sockaddr *)&in, sizeof in) || listen(lfd, 8) ||
      getsockname(lfd, (struct sockaddr *)&in, &il)) { perror("tcp"); return 1; }
  cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(cfd, (struct sockaddr *)&in, sizeof in)) { perror("connect tcp"); return 1; }
  afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  close(lfd);
  setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(afd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  pid = fork_echo(afd, cfd, 1);
  if (run("sock_tcp", cfd, 1, pid)) return 1;

  /* UDP: two bound, connected sockets on 127.0.0.1 */
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) }, b = a;
  socklen_t al = sizeof a, bl = sizeof b;
  int ufa = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ufb = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (bind(ufa, (struct sockaddr *)&a, sizeof a) || bind(ufb, (struct sockaddr *)&b, sizeof b) ||
      getsockname(ufa, (struct sockaddr *)&a, &al) || getsockname(ufb, (struct sockaddr *)&b, &bl) ||
      connect(ufa, (struct sockaddr *)&b, bl) || connect(ufb, (struct sockaddr *)&a, al)) { perror("udp"); return 1; }
  pid = fork_echo(ufb, ufa, 0);
  if (run("sock_udp", ufa, 0, pid)) return 1;
  return 0;
}
