/* run_true.c - the raw C baseline of bench/run_true.lua: start /bin/true
 * with posix_spawn and reap it with waitpid, as fast as possible.  Runs per
 * second over BENCH_ITERS runs (default 2000) after 100 warm-up runs. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run_true(void) {
  char *argv[] = {"true", NULL};
  pid_t pid;
  int st;
  if (posix_spawnp(&pid, "true", NULL, NULL, argv, environ) != 0) exit(1);
  if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) exit(2);
}

int main(void) {
  const char *e = getenv("BENCH_ITERS");
  int iters = e ? atoi(e) : 2000;
  for (int i = 0; i < 100; i++) run_true();
  double t0 = now();
  for (int i = 0; i < iters; i++) run_true();
  printf("metric run_true_rate %.0f runs/s higher\n", iters / (now() - t0));
  return 0;
}
