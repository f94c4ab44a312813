/*
 * msg_pingpong.c - raw C baseline: round trip of a 64-byte message over one
 * System V message queue between a parent and its forked child, type 1
 * towards the child and type 2 back (bench/msg_pingpong.lua does the same
 * through lipc).  Prints median and p99 in microseconds.
 *   BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
 */
#define _GNU_SOURCE
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>

#include "pingpong.h"

#define MSG 64

struct message { long mtype; char mtext[MSG]; };

int main(void) {
  pp_rtt b = pp_rtt_init();
  int id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  if (id < 0) { perror("msgget"); return 1; }
  pid_t pid = pp_fork();
  if (pid == 0) {  /* echo type 1 as type 2 until an empty message */
    struct message m;
    for (;;) {
      ssize_t n = msgrcv(id, &m, MSG, 1, 0);
      if (n <= 0) _exit(n == 0 ? 0 : 1);
      m.mtype = 2;
      if (msgsnd(id, &m, (size_t)n, 0) != 0) _exit(1);
    }
  }
  struct message out = { .mtype = 1 }, in;
  memset(out.mtext, 'x', MSG);
  for (int i = 0; i < b.total; i++) {
    long long t0 = pp_now_ns();
    if (msgsnd(id, &out, MSG, 0) != 0) { perror("msgsnd"); return 1; }
    if (msgrcv(id, &in, MSG, 2, 0) != MSG) { perror("msgrcv"); return 1; }
    pp_rtt_record(&b, i, t0);
  }
  if (msgsnd(id, &out, 0, 0) != 0) { perror("msgsnd"); return 1; }
  if (pp_reap(pid, "child")) return 1;
  msgctl(id, IPC_RMID, NULL);
  pp_rtt_report(&b, "msg", "<=1.15");
  return 0;
}
