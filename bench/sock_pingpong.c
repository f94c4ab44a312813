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
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
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

/* Time iters round trips over fd (the child echoes on its own socket). */
static int run(const char *key, int fd, int stream, pid_t pid, int iters, int warm) {
  long long *rtt = malloc(sizeof *rtt * (size_t)iters);
  if (!rtt) return 1;
  char msg[MSG], buf[MSG];
  memset(msg, 'x', MSG);
  for (int i = 0; i < warm + iters; i++) {
    long long t0 = now_ns();
    if (send(fd, msg, MSG, MSG_NOSIGNAL) != MSG) { perror("send"); return 1; }
    if (recv_all(fd, buf, MSG, stream) != MSG) { perror("recv"); return 1; }
    long long t1 = now_ns();
    if (i >= warm) rtt[i - warm] = t1 - t0;
  }
  if (stream) shutdown(fd, SHUT_WR);
  else send(fd, "", 0, 0);
  int status;
  if (waitpid(pid, &status, 0) != pid || status != 0) { fprintf(stderr, "%s: child failed\n", key); return 1; }
  close(fd);
  qsort(rtt, (size_t)iters, sizeof *rtt, cmp_ll);
  printf("metric %s_rtt_median %.3f us lower\n", key, rtt[iters / 2] / 1e3);
  printf("metric %s_rtt_p99 %.3f us lower\n", key, rtt[(int)ceil(iters * 0.99) - 1] / 1e3);
  printf("target %s_rtt_median <=1.15\n", key);
  fflush(stdout);
  free(rtt);
  return 0;
}

/* Fork a child that echoes on child_fd; the parent closes it. */
static pid_t fork_echo(int child_fd, int parent_fd, int stream) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    if (parent_fd >= 0) close(parent_fd);
    echo(child_fd, stream);
  }
  close(child_fd);
  return pid;
}

int main(void) {
  int iters = env_int("BENCH_ITERS", 20000), warm = env_int("BENCH_WARMUP", 2000);
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
  if (run("sock_unix", cfd, 1, pid, iters, warm)) return 1;

  /* socketpair */
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) { perror("socketpair"); return 1; }
  pid = fork_echo(sv[1], sv[0], 1);
  if (run("sock_pair", sv[0], 1, pid, iters, warm)) return 1;

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
  if (run("sock_tcp", cfd, 1, pid, iters, warm)) return 1;

  /* UDP: two bound, connected sockets on 127.0.0.1 */
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) }, b = a;
  socklen_t al = sizeof a, bl = sizeof b;
  int ufa = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ufb = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (bind(ufa, (struct sockaddr *)&a, sizeof a) || bind(ufb, (struct sockaddr *)&b, sizeof b) ||
      getsockname(ufa, (struct sockaddr *)&a, &al) || getsockname(ufb, (struct sockaddr *)&b, &bl) ||
      connect(ufa, (struct sockaddr *)&b, bl) || connect(ufb, (struct sockaddr *)&a, al)) { perror("udp"); return 1; }
  pid = fork_echo(ufb, ufa, 0);
  if (run("sock_udp", ufa, 0, pid, iters, warm)) return 1;
  return 0;
}
