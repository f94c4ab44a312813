/*
 * sem_pingpong.c - raw C baseline: round trip between a parent and its forked
 * child through two unnamed process-shared POSIX semaphores (sem_init
 * pshared = 1) in an anonymous shared mapping: the parent posts "ping" and
 * waits "pong" (bench/sem_pingpong.lua does the same through lipc).
 *   BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
 */
#define _GNU_SOURCE
#include <semaphore.h>
#include <sys/mman.h>

#include "pingpong.h"

int main(void) {
  pp_rtt b = pp_rtt_init();
  unsigned char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) { perror("mmap"); return 1; }
  sem_t *ping = (sem_t *)m, *pong = (sem_t *)(m + 64);
  if (sem_init(ping, 1, 0) != 0 || sem_init(pong, 1, 0) != 0) { perror("sem_init"); return 1; }
  pid_t pid = pp_fork();
  if (pid == 0) {
    for (int i = 0; i < b.total; i++) {
      if (sem_wait(ping) != 0 || sem_post(pong) != 0) _exit(1);
    }
    _exit(0);
  }
  for (int i = 0; i < b.total; i++) {
    long long t0 = pp_now_ns();
    if (sem_post(ping) != 0 || sem_wait(pong) != 0) { perror("sem"); return 1; }
    pp_rtt_record(&b, i, t0);
  }
  if (pp_reap(pid, "child")) return 1;
  pp_rtt_report(&b, "sem", "<=1.15");
  munmap(m, 4096);
  return 0;
}
