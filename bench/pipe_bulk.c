/*
 * pipe_bulk.c - raw C baseline: bulk throughput through a pipe in 64 KiB
 * chunks, a forked child writing, the parent reading until end of stream
 * (bench/pipe_bulk.lua does the same through lipc).  The clock starts
 * after the first 64 MiB have been read.
 *   BENCH_BULK_MB: MiB to move (default 2048).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 65536
#define WARM (64LL << 20)

/* Monotonic time in seconds. */
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void) {
  const char *mb = getenv("BENCH_BULK_MB");
  long long total = (mb && *mb ? atoll(mb) : 2048) << 20;
  static char buf[CHUNK];
  int p[2];
  if (pipe2(p, O_CLOEXEC)) { perror("pipe"); return 1; }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) { perror("fork"); return 1; }
  if (pid == 0) {
    close(p[0]);
    memset(buf, 'x', CHUNK);
    for (long long sent = 0; sent < total; sent += CHUNK)
      if (write(p[1], buf, CHUNK) != CHUNK) _exit(1);
    _exit(0);
  }
  close(p[1]);
  long long got = 0, timed = 0;
  double t0 = 0;
  for (;;) {
    ssize_t n = read(p[0], buf, CHUNK);
    if (n < 0) { perror("read"); return 1; }
    if (n == 0) break;
    got += n;
    if (got >= WARM) {
      if (t0 == 0) t0 = now_s(); else timed += n;
    }
  }
  double secs = now_s() - t0;
  int status;
  if (waitpid(pid, &status, 0) != pid || status != 0 || got != total) {
    fprintf(stderr, "writer failed or short: %lld of %lld\n", got, total);
    return 1;
  }
  printf("metric pipe_bulk_throughput %.1f MB/s higher\n", timed / 1e6 / secs);
  printf("target pipe_bulk_throughput >=0.85\n");
  return 0;
}
