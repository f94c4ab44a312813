/*
 * channel_stream.c - raw C baseline of bench/channel_stream.lua: a forked
 * child writes BENCH_VALUES (default 1000000) 64-byte messages into a
 * pipe, each with its own write(2); the parent reads each with its own
 * read(2) of 64 bytes and checks its sequence number.  Messages per
 * second, from the fork to the end of the stream.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SIZE 64

/* Monotonic time in seconds. */
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Read exactly SIZE bytes (a pipe write of 64 bytes is atomic, so one read
 * normally); 0 at end of stream, -1 on error. */
static int read_msg(int fd, char *buf) {
  size_t got = 0;
  while (got < SIZE) {
    ssize_t n = read(fd, buf + got, SIZE - got);
    if (n < 0) return -1;
    if (n == 0) return got == 0 ? 0 : -1;
    got += (size_t)n;
  }
  return 1;
}

int main(void) {
  const char *e = getenv("BENCH_VALUES");
  long n = e && *e ? atol(e) : 1000000;
  char buf[SIZE];
  int p[2];
  if (pipe2(p, O_CLOEXEC)) { perror("pipe"); return 1; }
  fflush(NULL);
  double t0 = now_s();
  pid_t pid = fork();
  if (pid < 0) { perror("fork"); return 1; }
  if (pid == 0) {
    close(p[0]);
    memset(buf, 'x', SIZE);
    for (long i = 1; i <= n; i++) {
      uint64_t seq = (uint64_t)i;
      memcpy(buf, &seq, sizeof seq);
      if (write(p[1], buf, SIZE) != SIZE) _exit(1);
    }
    _exit(0);
  }
  close(p[1]);
  long count = 0;
  for (;;) {
    int r = read_msg(p[0], buf);
    if (r < 0) { perror("read"); return 1; }
    if (r == 0) break;
    uint64_t seq;
    memcpy(&seq, buf, sizeof seq);
    if (seq != (uint64_t)++count) { fprintf(stderr, "out of order\n"); return 1; }
  }
  double secs = now_s() - t0;
  int status;
  if (waitpid(pid, &status, 0) != pid || status != 0 || count != n) {
    fprintf(stderr, "writer failed or short: %ld of %ld\n", count, n);
    return 1;
  }
  printf("metric channel_stream_values %.0f values/s higher\n", (double)n / secs);
  return 0;
}
