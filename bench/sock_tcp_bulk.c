/*
 * sock_tcp_bulk.c - raw C baseline: TCP throughput on 127.0.0.1 in 64 KiB
 * chunks, a forked child sending, the parent receiving until end of stream
 * (bench/sock_tcp_bulk.lua does the same through lipc); the clock starts
 * after the first 64 MiB.  BENCH_BULK_MB: MiB to move (default 2048).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 65536
#define WARM (64LL << 20)

/* Monotonic time in nanoseconds. */
static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(void) {
  const char *mb = getenv("BENCH_BULK_MB");
  long long total = (long long)(mb && *mb ? atoll(mb) : 2048) << 20;
  struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  socklen_t il = sizeof in;
  int one = 1;
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, (struct sockaddr *)&in, sizeof in) || listen(lfd, 8) ||
      getsockname(lfd, (struct sockaddr *)&in, &il)) { perror("listen"); return 1; }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) { perror("fork"); return 1; }
  if (pid == 0) {
    close(lfd);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, (struct sockaddr *)&in, sizeof in)) _exit(1);
    static char chunk[CHUNK];
    memset(chunk, 'x', CHUNK);
    for (long long sent = 0; sent < total; ) {
      ssize_t n = send(fd, chunk, CHUNK, MSG_NOSIGNAL);
      if (n != CHUNK) _exit(1);   /* a blocking send sends it all */
      sent += n;
    }
    _exit(0);
  }
  int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  close(lfd);
  static char buf[CHUNK];
  long long got = 0, timed = 0, t0 = 0;
  for (;;) {
    ssize_t n = recv(fd, buf, CHUNK, 0);
    if (n < 0) { perror("recv"); return 1; }
    if (n == 0) break;
    got += n;
    if (t0) timed += n;
    else if (got >= WARM) t0 = now_ns();
  }
  long long t1 = now_ns();
  int status;
  if (waitpid(pid, &status, 0) != pid || status != 0 || got != total) { fprintf(stderr, "child failed\n"); return 1; }
  printf("metric sock_tcp_bulk %.1f MB/s higher\n", timed / 1e6 / ((t1 - t0) / 1e9));
  printf("target sock_tcp_bulk >=0.85\n");
  return 0;
}
