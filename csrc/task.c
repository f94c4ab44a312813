/*
 * task.c - tasks: ipc.go, ipc.loop, ipc.sleep and lipc.task (t:join,
 * t:cancel, t:status).
 *
 * A task is a coroutine that this process's loop resumes.  Every lipc call
 * that can block runs through lipc_run (core.c): inside a task it boxes
 * its wait record on the coroutine's stack and yields with a continuation;
 * the loop reads the record (lipc_task_waiting) and parks the task until
 * what it waits for happens:
 *   - a descriptor (w->fd, w->events): one epoll set per loop.  A
 *     descriptor stays registered across waits, EPOLLONESHOT, re-armed by
 *     one EPOLL_CTL_MOD per wait (MOD answers ENOENT when the number now
 *     names another file: then it is added again; a stale registration of
 *     the old file can fire at most once, which only resumes a task that
 *     tries again and waits again);
 *   - its deadline, a sleep, a backoff (nothing to wait for, or a wait said
 *     ready and the call still would block): a binary heap of wake-up times;
 *   - a futex word (w->word while it holds w->val): the loop's futex
 *     waiter, one helper thread that sleeps in futex_waitv(2) on every
 *     word its tasks wait on plus a private control word, and writes an
 *     eventfd (in the epoll set) when one of them is woken or changed; the
 *     loop then resumes that task, which tries again.  The thread never
 *     reads or writes the words itself (only the kernel does, inside
 *     futex_waitv, which answers EFAULT for unmapped memory), so an object
 *     closed while a task waits on it cannot fault it (its release calls
 *     lipc_task_forget, which resumes those tasks); the object stays
 *     alive (not collected) as an argument on the task's stack, beside
 *     the boxed wait record.  The loop bumps the control word to change
 *     the set: a new waiter, a task resumed for its deadline or cancelled
 *     (its word is dropped at once).  Without futex_waitv (Linux < 5.16),
 *     or beyond 127 words, a task retries every millisecond instead;
 *   - t:join: the list of joiners of the other task.
 * The resumed continuation (core.c) checks for cancel ("cancelled"), tries
 * again, and returns the timeout result itself once the deadline passed:
 * the loop only decides when to resume.
 *
 * The loop waits in epoll_wait (epoll_pwait2 for finite timeouts: the
 * nanosecond timeout keeps timers on time), or in ppoll without
 * descriptors while no task waited on one.  A Ctrl-C interrupts the wait:
 * the loop returns EINTR to Lua through lipc_error, so the interpreter
 * raises "interrupted!" (core.c's rule).  The epoll descriptor is
 * close-on-exec and closed whenever the loop runs out of tasks.
 *
 * fork: a pthread_atfork child handler bumps fork_gen and clears the
 * running task (lipc_task_enter(NULL, 0)), so in the child every call
 * blocks, even inside the coroutine that forked; the first use of the loop
 * in the child starts it fresh (the parent's tasks are not the child's;
 * the futex waiter thread does not exist there: its memory is freed
 * without a join, its eventfd closed).
 */
#include "core.h"

#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Registry key of the loop userdata. */
static const char LOOP_KEY[] = "lipc.loop";
#define TASK_MT "lipc.task"

/* Bumped in every forked child: a loop or task of an older generation
 * belongs to the parent. */
static unsigned fork_gen;

enum { T_NEW, T_READY, T_RUNNING, T_WAITING, T_DONE, T_FAILED, T_CANCELLED };
static const char *const STATE_NAMES[] = {
  "running", "running", "running", "waiting", "done", "failed", "cancelled"
};

/* What a waiting task waits for. */
enum { W_NONE, W_FD, W_TIMER, W_JOIN, W_BACKOFF_FD, W_FUTEX };

/* Results of a loop run. */
enum { RUN_DONE, RUN_TIMEOUT, RUN_EINTR, RUN_FORKED, RUN_DEADLOCK };

/* A circular doubly-linked list node (a sentinel is the list). */
typedef struct tlink { struct tlink *next, *prev; } tlink;

typedef struct lloop lloop;
typedef struct ltask ltask;
typedef struct fwaiter fwaiter;

/* The first word of every task userdata: task_mark's address, which no Lua
 * code can write (the class check, as core.c's for handles). */
static const char task_mark = 0;

struct ltask {
  const char *mark;      /* &task_mark */
  tlink node;            /* in the ready queue, a descriptor's waiters or joiners */
  tlink joiners;         /* tasks waiting in t:join for this one */
  lua_State *co;        /* the coroutine (user value 1) */
  lloop *loop;
  unsigned gen;         /* fork_gen when made */
  int state;            /* T_* */
  int cancel;           /* cancel asked: its waits raise "cancelled" */
  int observed;         /* someone called join on it */
  int nargs;            /* arguments of the first resume */
  int nres, resbase;    /* results on co's stack once done */
  int wait;             /* W_* while waiting */
  int fd;               /* the descriptor it waits for (W_FD, W_BACKOFF_FD) */
  uint32_t events;
  long long deadline;   /* ns on CLOCK_MONOTONIC of its wait's deadline, -1: none */
  long long when;       /* heap key: when to wake it */
  int heap;             /* index in the heap, -1 when not there */
  ltask *target;        /* the task it joins (W_JOIN) */
};

/* One descriptor the loop's epoll set knows. */
typedef struct fdrec {
  tlink waiters;
  uint32_t armed;       /* events armed in the set (0: disarmed) */
  int registered;       /* added to the set */
} fdrec;

struct lloop {
  unsigned gen;         /* fork_gen of this state */
  int epfd;             /* -1 until a task waits on a descriptor */
  int running;          /* ipc.loop or an outside join is running it */
  int ntasks;           /* unfinished tasks (anchored in user value 1) */
  int nready;
  int nfdwait;          /* tasks waiting on a descriptor */
  tlink ready;
  fdrec **fds;          /* by descriptor number */
  int nfds;
  ltask **heap;
  int nheap, capheap;
  ltask *current;       /* the task being resumed */
  fwaiter *fw;          /* the futex waiter, NULL until a task waits on a word */
  int nfutex;           /* tasks waiting on a futex word (W_FUTEX) */
};

/* ---- small helpers ----------------------------------------------------- */

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct timespec ns_ts(long long ns) {
  struct timespec ts = { (time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL) };
  return ts;
}

/* The deadline of d in ns, -1 when forever. */
static long long deadline_ns(const lipc_deadline *d) {
  if (d->forever) return -1;
  return (long long)d->end.tv_sec * 1000000000LL + d->end.tv_nsec;
}

static void list_init(tlink *l) { l->next = l->prev = l; }
static int list_empty(const tlink *l) { return l->next == l; }
static void list_append(tlink *l, tlink *n) {
  n->prev = l->prev; n->next = l;
  l->prev->next = n; l->prev = n;
}
static void list_unlink(tlink *n) {
  if (n->next == NULL) return;
  n->prev->next = n->next; n->next->prev = n->prev;
  n->next = n->prev = NULL;
}
#define NODE_TASK(n) ((ltask *)((char *)(n) - offsetof(ltask, node)))

/* ---- the timer heap ---------------------------------------------------- */

static void heap_set(lloop *lp, int i, ltask *t) { lp->heap[i] = t; t->heap = i; }

static void heap_up(lloop *lp, int i) {
  ltask *t = lp->heap[i];
  while (i > 0) {
    int p = (i - 1) / 2;
    if (lp->heap[p]->when <= t->when) break;
    heap_set(lp, i, lp->heap[p]);
    i = p;
  }
  heap_set(lp, i, t);
}

static void heap_down(lloop *lp, int i) {
  ltask *t = lp->heap[i];
  for (;;) {
    int c = 2 * i + 1;
    if (c >= lp->nheap) break;
    if (c + 1 < lp->nheap && lp->heap[c + 1]->when < lp->heap[c]->when) c++;
    if (lp->heap[c]->when >= t->when) break;
    heap_set(lp, i, lp->heap[c]);
    i = c;
  }
  heap_set(lp, i, t);
}

/* Add t at time when (room is reserved by ipc.go: one slot per task). */
static void heap_push(lloop *lp, ltask *t, long long when) {
  t->when = when;
  heap_set(lp, lp->nheap++, t);
  heap_up(lp, t->heap);
}

static void heap_remove(lloop *lp, ltask *t) {
  int i = t->heap;
  if (i < 0) return;
  t->heap = -1;
  ltask *last = lp->heap[--lp->nheap];
  if (i == lp->nheap) return;
  heap_set(lp, i, last);
  heap_up(lp, i);
  heap_down(lp, last->heap);
}

/* ---- the loop state ---------------------------------------------------- */

static void fw_stop(fwaiter *fw);

/* Forget the descriptors, the futex waiter and the epoll set (no task
 * waits on any). */
static void loop_idle(lloop *lp) {
  if (lp->fw) fw_stop(lp->fw);
  lp->fw = NULL;
  lp->nfutex = 0;
  if (lp->epfd >= 0) close(lp->epfd);
  lp->epfd = -1;
  for (int i = 0; i < lp->nfds; i++) free(lp->fds[i]);
  free(lp->fds);
  lp->fds = NULL;
  lp->nfds = 0;
  lp->nfdwait = 0;
}

/* Push the loop userdata. */
static lloop *push_loop(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, LOOP_KEY);
  return lua_touserdata(L, -1);
}

/* In a forked child, start the loop afresh: the parent's tasks stay the
 * parent's (their structs are copies nobody touches again); the inherited
 * epoll descriptor is the parent's set and is closed here. */
static void loop_check(lua_State *L, lloop *lp) {
  if (lp->gen == fork_gen) return;
  loop_idle(lp);
  free(lp->heap);
  lp->heap = NULL;
  lp->nheap = lp->capheap = 0;
  list_init(&lp->ready);
  lp->nready = 0;
  lp->ntasks = 0;
  lp->running = 0;
  lp->current = NULL;
  lp->gen = fork_gen;
  push_loop(L);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);   /* no anchored tasks */
  lua_newtable(L);
  lua_setiuservalue(L, -2, 2);   /* no unobserved failures */
  lua_pop(L, 1);
}

static void make_ready(lloop *lp, ltask *t) {
  t->state = T_READY;
  t->wait = W_NONE;
  list_append(&lp->ready, &t->node);
  lp->nready++;
}

static void fw_remove(lloop *lp, ltask *t);

/* Take t out of whatever it waits on (not the ready queue). */
static void unpark(lloop *lp, ltask *t) {
  if (t->wait == W_FD) lp->nfdwait--;
  if (t->wait == W_FUTEX) { fw_remove(lp, t); lp->nfutex--; }
  if (t->wait != W_NONE) list_unlink(&t->node);
  heap_remove(lp, t);
  t->wait = W_NONE;
  t->target = NULL;
}

static void wake(lloop *lp, ltask *t) {
  unpark(lp, t);
  make_ready(lp, t);
}

/* ---- descriptors ------------------------------------------------------- */

/* The record of fd, made on first use; NULL when out of memory. */
static fdrec *fd_record(lloop *lp, int fd) {
  if (fd >= lp->nfds) {
    int n = lp->nfds ? lp->nfds : 64;
    while (n <= fd) n *= 2;
    fdrec **f = realloc(lp->fds, (size_t)n * sizeof *f);
    if (f == NULL) return NULL;
    memset(f + lp->nfds, 0, (size_t)(n - lp->nfds) * sizeof *f);
    lp->fds = f;
    lp->nfds = n;
  }
  if (lp->fds[fd] == NULL) {
    fdrec *r = calloc(1, sizeof *r);
    if (r == NULL) return NULL;
    list_init(&r->waiters);
    lp->fds[fd] = r;
  }
  return lp->fds[fd];
}

/* The events the waiters of r wait for. */
static uint32_t fd_union(fdrec *r) {
  uint32_t ev = 0;
  for (tlink *n = r->waiters.next; n != &r->waiters; n = n->next) ev |= NODE_TASK(n)->events;
  return ev;
}

/* Arm fd in the set for events (one-shot).  0 or an errno value. */
static int fd_arm(lloop *lp, int fd, fdrec *r, uint32_t events) {
  if (lp->epfd < 0) {
    lp->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (lp->epfd < 0) return errno;
  }
  struct epoll_event ev = { .events = events | EPOLLONESHOT, .data.fd = fd };
  int op = r->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  int rc = epoll_ctl(lp->epfd, op, fd, &ev);
  if (rc != 0 && errno == ENOENT && op == EPOLL_CTL_MOD)   /* the number names a new file */
    rc = epoll_ctl(lp->epfd, EPOLL_CTL_ADD, fd, &ev);
  else if (rc != 0 && errno == EEXIST && op == EPOLL_CTL_ADD)
    rc = epoll_ctl(lp->epfd, EPOLL_CTL_MOD, fd, &ev);
  if (rc != 0) { r->registered = 0; r->armed = 0; return errno; }
  r->registered = 1;
  r->armed = events;
  return 0;
}

/* Park t on fd for events; a descriptor epoll cannot wait for (a regular
 * file, a closed number) makes it ready at once: its try reports. */
static void park_fd(lloop *lp, ltask *t, int fd, uint32_t events, long long deadline) {
  fdrec *r = fd_record(lp, fd);
  t->state = T_WAITING;
  if (r == NULL) {   /* out of memory: retry soon */
    t->wait = W_TIMER;
    long long when = now_ns() + 1000000LL;
    heap_push(lp, t, deadline >= 0 && deadline < when ? deadline : when);
    return;
  }
  t->wait = W_FD;
  t->fd = fd;
  t->events = events;
  list_append(&r->waiters, &t->node);
  lp->nfdwait++;
  /* armed at every wait: a cached "armed" could belong to a file that this
   * number named before (closed since), whose registration is gone */
  if (fd_arm(lp, fd, r, fd_union(r)) != 0) {
    wake(lp, t);
    return;
  }
  if (deadline >= 0) heap_push(lp, t, deadline);
}

/* epoll said fd is ready (its one-shot registration is now disarmed). */
static void fd_event(lloop *lp, int fd, uint32_t revents) {
  if (fd < 0 || fd >= lp->nfds || lp->fds[fd] == NULL) return;
  fdrec *r = lp->fds[fd];
  r->armed = 0;
  tlink *n = r->waiters.next;
  while (n != &r->waiters) {
    ltask *t = NODE_TASK(n);
    n = n->next;
    if (revents & (t->events | EPOLLERR | EPOLLHUP)) wake(lp, t);
  }
  if (!list_empty(&r->waiters)) {
    uint32_t want = fd_union(r);
    if (fd_arm(lp, fd, r, want) != 0) {   /* cannot re-arm: let them try */
      while (!list_empty(&r->waiters)) wake(lp, NODE_TASK(r->waiters.next));
    }
  }
}

/* ---- the futex waiter -------------------------------------------------- */

#define FW_MAX (FUTEX_WAITV_MAX - 1)   /* words; the last slot is the control word */

typedef struct fw_entry {
  const uint32_t *word;
  uint32_t val;
  int shared;
  int fired;            /* woken (or changed): the loop resumes t */
  ltask *t;
} fw_entry;

struct fwaiter {
  pthread_t thread;
  pthread_mutex_t mu;   /* guards the entries, stop */
  int efd;              /* written by the thread when an entry fired */
  _Atomic uint32_t ctl; /* private control word: bumped to change the set */
  int stop;
  unsigned gen;         /* fork_gen of the process that started the thread */
  int n;
  fw_entry e[FW_MAX];
};

/* 0 untested, 1 futex_waitv works, -1 it does not (tasks poll). */
static int fw_works;

static long futex_waitv_(struct futex_waitv *v, unsigned n) {
  return syscall(SYS_futex_waitv, v, n, 0, NULL, CLOCK_MONOTONIC);
}

static void fw_kick(fwaiter *fw) {
  atomic_fetch_add(&fw->ctl, 1);
  (void)syscall(SYS_futex, &fw->ctl, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Mark the entry of task t fired (when still there); 1 when it was. */
static int fw_fire(fwaiter *fw, ltask *t) {
  for (int i = 0; i < fw->n; i++) {
    if (fw->e[i].t != t) continue;
    if (fw->e[i].fired) return 0;
    fw->e[i].fired = 1;
    return 1;
  }
  return 0;
}

/* The thread: sleep on every word not fired yet and the control word;
 * mark what woke, tell the loop through the eventfd.  All signals are
 * blocked here (Ctrl-C belongs to the loop's thread). */
static void *fw_main(void *arg) {
  fwaiter *fw = arg;
  struct futex_waitv v[FUTEX_WAITV_MAX];
  ltask *who[FUTEX_WAITV_MAX];
  pthread_mutex_lock(&fw->mu);
  while (!fw->stop) {
    unsigned n = 0;
    for (int i = 0; i < fw->n; i++) {
      if (fw->e[i].fired) continue;
      v[n].val = fw->e[i].val;
      v[n].uaddr = (uintptr_t)fw->e[i].word;
      v[n].flags = FUTEX_32 | (fw->e[i].shared ? 0 : FUTEX_PRIVATE_FLAG);
      v[n].__reserved = 0;
      who[n++] = fw->e[i].t;
    }
    uint32_t c = atomic_load(&fw->ctl);
    v[n].val = c;
    v[n].uaddr = (uintptr_t)&fw->ctl;
    v[n].flags = FUTEX_32 | FUTEX_PRIVATE_FLAG;
    v[n].__reserved = 0;
    pthread_mutex_unlock(&fw->mu);
    long r = futex_waitv_(v, n + 1);
    int err = r < 0 ? errno : 0;
    pthread_mutex_lock(&fw->mu);
    if (fw->stop) break;
    int fired = 0;
    if (r >= 0 && (unsigned long)r < n) {
      if (fw_fire(fw, who[r])) fired = 1;
      else   /* its task left meanwhile: pass the wake-up on (spurious ones are harmless) */
        (void)syscall(SYS_futex, (void *)(uintptr_t)v[r].uaddr,
                      (v[r].flags & FUTEX_PRIVATE_FLAG) ? FUTEX_WAKE_PRIVATE : FUTEX_WAKE, 1, NULL, NULL, 0);
    } else if (r < 0 && err != EINTR && !(err == EAGAIN && atomic_load(&fw->ctl) != c)) {
      /* a word no longer held its value (EAGAIN does not tell which) or
       * cannot be read (EFAULT: closed and unmapped): every task tries
       * again, and waits again with what it finds */
      for (unsigned i = 0; i < n; i++) fired |= fw_fire(fw, who[i]);
    }
    if (fired) {
      uint64_t one = 1;
      (void)!write(fw->efd, &one, sizeof one);
    }
  }
  pthread_mutex_unlock(&fw->mu);
  return NULL;
}

/* Stop the thread (not in a forked child, where it does not exist) and
 * free fw. */
static void fw_stop(fwaiter *fw) {
  if (fw->gen == fork_gen) {
    pthread_mutex_lock(&fw->mu);
    fw->stop = 1;
    pthread_mutex_unlock(&fw->mu);
    fw_kick(fw);
    pthread_join(fw->thread, NULL);
    pthread_mutex_destroy(&fw->mu);
  }
  close(fw->efd);
  free(fw);
}

/* The loop's futex waiter, started on first use (its eventfd in the epoll
 * set); NULL when there is none (no futex_waitv, out of resources). */
static fwaiter *fw_get(lloop *lp) {
  if (lp->fw) return lp->fw;
  if (fw_works == 0) {
    uint32_t word = 0;
    struct futex_waitv v = { 1, (uintptr_t)&word, FUTEX_32 | FUTEX_PRIVATE_FLAG, 0 };
    fw_works = futex_waitv_(&v, 1) < 0 && errno == EAGAIN ? 1 : -1;
  }
  if (fw_works < 0) return NULL;
  if (lp->epfd < 0) {
    lp->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (lp->epfd < 0) return NULL;
  }
  fwaiter *fw = calloc(1, sizeof *fw);
  if (fw == NULL) return NULL;
  fw->gen = fork_gen;
  fw->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fw->efd < 0) { free(fw); return NULL; }
  struct epoll_event ev = { .events = EPOLLIN, .data.fd = fw->efd };
  if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, fw->efd, &ev) != 0 || pthread_mutex_init(&fw->mu, NULL) != 0) {
    close(fw->efd);
    free(fw);
    return NULL;
  }
  pthread_attr_t attr;
  sigset_t all, old;
  sigfillset(&all);
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int err = pthread_create(&fw->thread, &attr, fw_main, fw);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    pthread_mutex_destroy(&fw->mu);
    close(fw->efd);
    free(fw);
    return NULL;
  }
  lp->fw = fw;
  return fw;
}

/* Add t's wait on word to the waiter; 0, or -1 (full, no waiter). */
static int fw_add(lloop *lp, ltask *t, const lipc_wait *w) {
  fwaiter *fw = fw_get(lp);
  if (fw == NULL) return -1;
  pthread_mutex_lock(&fw->mu);
  if (fw->n == FW_MAX) { pthread_mutex_unlock(&fw->mu); return -1; }
  fw_entry *e = &fw->e[fw->n++];
  e->word = w->word;
  e->val = w->val;
  e->shared = w->shared;
  e->fired = 0;
  e->t = t;
  pthread_mutex_unlock(&fw->mu);
  fw_kick(fw);
  return 0;
}

/* The loop of the Lua state last opened on this thread (for
 * lipc_task_forget, which has no lua_State). */
static _Thread_local lloop *thread_loop;

void lipc_task_forget(const void *addr, size_t len) {
  lloop *lp = thread_loop;
  fwaiter *fw = lp ? lp->fw : NULL;
  if (fw == NULL || fw->gen != fork_gen) return;
  const char *lo = addr, *hi = lo + len;
  int fired = 0;
  pthread_mutex_lock(&fw->mu);
  for (int i = 0; i < fw->n; i++) {
    const char *w = (const char *)fw->e[i].word;
    if (w >= lo && w < hi && !fw->e[i].fired) { fw->e[i].fired = 1; fired = 1; }
  }
  pthread_mutex_unlock(&fw->mu);
  if (fired) {
    uint64_t one = 1;
    (void)!write(fw->efd, &one, sizeof one);
    fw_kick(fw);   /* the thread lets go of the words */
  }
}

/* Drop t's word from the waiter (its wait ended: fired, deadline, cancel). */
static void fw_remove(lloop *lp, ltask *t) {
  fwaiter *fw = lp->fw;
  if (fw == NULL) return;
  int kick = 0;
  pthread_mutex_lock(&fw->mu);
  for (int i = 0; i < fw->n; i++) {
    if (fw->e[i].t != t) continue;
    kick = !fw->e[i].fired;   /* the thread may sleep on it: make it let go */
    fw->e[i] = fw->e[--fw->n];
    break;
  }
  pthread_mutex_unlock(&fw->mu);
  if (kick) fw_kick(fw);
}

/* The waiter's eventfd is readable: resume the tasks whose word fired. */
static void fw_event(lloop *lp) {
  fwaiter *fw = lp->fw;
  uint64_t v;
  (void)!read(fw->efd, &v, sizeof v);
  ltask *ready[FW_MAX];
  int n = 0;
  pthread_mutex_lock(&fw->mu);
  for (int i = 0; i < fw->n; i++)
    if (fw->e[i].fired) ready[n++] = fw->e[i].t;
  pthread_mutex_unlock(&fw->mu);
  for (int i = 0; i < n; i++)
    if (ready[i]->wait == W_FUTEX) wake(lp, ready[i]);
}

/* ---- parking a task after it yielded ----------------------------------- */

static void park_timer(lloop *lp, ltask *t, int wait, long long when, long long deadline) {
  t->state = T_WAITING;
  t->wait = wait;
  t->deadline = deadline;
  if (deadline >= 0 && (when < 0 || deadline < when)) when = deadline;
  if (when >= 0) heap_push(lp, t, when);
}

/* Park t for what the wait record w says. */
static void park_wait(lloop *lp, ltask *t, const lipc_wait *w) {
  long long dl = deadline_ns(&w->d);
  if (w->fd >= 0) {
    if (w->tries > 1) {   /* a wait said ready and it still would block */
      t->fd = w->fd;
      t->events = (uint32_t)(unsigned short)w->events;
      park_timer(lp, t, W_BACKOFF_FD, now_ns() + lipc_backoff_ns(w->tries - 2), dl);
    } else {
      park_fd(lp, t, w->fd, (uint32_t)(unsigned short)w->events, dl);
    }
  } else if (w->word != NULL) {
    if (fw_add(lp, t, w) == 0) {
      /* w->recheck: resumed every 0.2 s too (a dead peer wakes nobody) */
      park_timer(lp, t, W_FUTEX, w->recheck ? now_ns() + 200000000LL : -1, dl);
      lp->nfutex++;
    } else {
      park_timer(lp, t, W_TIMER, now_ns() + 1000000LL, dl);   /* no waiter: poll */
    }
  } else if (w->sleep) {
    park_timer(lp, t, W_TIMER, -1, dl);
  } else {
    /* nothing to wait on (System V semaphores and queues): back off, at
     * most 1 ms between tries */
    long long ns = lipc_backoff_ns(w->tries - 1);
    park_timer(lp, t, W_TIMER, now_ns() + (ns > 1000000LL ? 1000000LL : ns), dl);
  }
}

/* Wake the tasks whose time has come. */
static void expire_timers(lloop *lp, long long now) {
  while (lp->nheap > 0 && lp->heap[0]->when <= now) {
    ltask *t = lp->heap[0];
    heap_remove(lp, t);
    if (t->wait == W_BACKOFF_FD && !(t->deadline >= 0 && now >= t->deadline)) {
      t->wait = W_NONE;
      park_fd(lp, t, t->fd, t->events, t->deadline);
    } else {
      wake(lp, t);
    }
  }
}

/* ---- finishing --------------------------------------------------------- */

/* Push the userdata of task t (anchored while unfinished). */
static void push_task(lua_State *L, ltask *t) {
  push_loop(L);
  lua_getiuservalue(L, -1, 1);
  lua_rawgetp(L, -1, t);
  lua_replace(L, -3);
  lua_pop(L, 1);
}

/* t ended as state: unanchor it, wake its joiners; a failure nobody joins
 * is kept for ipc.loop to raise. */
static void finish(lua_State *L, lloop *lp, ltask *t, int state) {
  t->state = state;
  int joined = !list_empty(&t->joiners);
  while (!list_empty(&t->joiners)) wake(lp, NODE_TASK(t->joiners.next));
  push_loop(L);
  if (state == T_FAILED && !joined && !t->observed) {
    lua_getiuservalue(L, -1, 2);
    push_task(L, t);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
  }
  lua_getiuservalue(L, -1, 1);
  lua_pushnil(L);
  lua_rawsetp(L, -2, t);
  lua_pop(L, 2);
  lp->ntasks--;
}

/* The coroutine of t raised: keep the error object (user value 2) and the
 * traceback (user value 3), run its pending <close> variables, and finish
 * it as failed, or cancelled when a cancel was asked. */
static void fail(lua_State *L, lloop *lp, ltask *t) {
  lua_State *co = t->co;
  push_task(L, t);
  int tidx = lua_gettop(L);
  lua_pushvalue(co, -1);
  lua_xmove(co, L, 1);                 /* the error object */
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, tidx, 2);
  const char *msg;
  if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)
    msg = lua_tostring(L, -1);
  else if (luaL_callmeta(L, -1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
    msg = lua_tostring(L, -1);
  else
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, tidx + 1));
  luaL_traceback(L, co, msg, 0);
  lua_setiuservalue(L, tidx, 3);
#if LUA_VERSION_RELEASE_NUM >= 50406
  int cst = lua_closethread(co, L);
#else
  int cst = lua_resetthread(co);
#endif
  if (cst != LUA_OK) {   /* a __close raised: that error is the task's */
    lua_xmove(co, L, 1);
    lua_setiuservalue(L, tidx, 2);
  }
  lua_settop(L, tidx - 1);
  finish(L, lp, t, t->cancel ? T_CANCELLED : T_FAILED);
}

/* ---- running ----------------------------------------------------------- */

/* Resume t once and park, requeue or finish it after. */
static void resume(lua_State *L, lloop *lp, ltask *t) {
  lua_State *co = t->co;
  int nargs = t->state == T_NEW ? t->nargs : 0;
  t->state = T_RUNNING;
  lp->current = t;
  lua_State *prev = lipc_task_enter(co, t->cancel);
  int nres = 0;
  int st = lua_resume(co, L, nargs, &nres);
  lipc_wait *w = st == LUA_YIELD ? lipc_task_waiting() : NULL;
  lipc_task_enter(prev, 0);
  if (t->gen != fork_gen) return;   /* a child of a fork inside t: not ours */
  lp->current = NULL;
  if (st == LUA_YIELD) {
    lua_pop(co, nres);
    if (t->cancel) make_ready(lp, t);          /* resumed to raise "cancelled" */
    else if (w != NULL) park_wait(lp, t, w);
    else if (t->wait == W_JOIN) {              /* t:join yielded */
      t->state = T_WAITING;
      list_append(&t->target->joiners, &t->node);
      if (t->deadline >= 0) heap_push(lp, t, t->deadline);
    } else make_ready(lp, t);                  /* a plain coroutine.yield */
  } else if (st == LUA_OK) {
    t->nres = nres;
    t->resbase = lua_gettop(co) - nres + 1;
    finish(L, lp, t, T_DONE);
  } else {
    fail(L, lp, t);
  }
}

static int epoll_pwait2_missing;

/* Wait up to ns (-1: forever) for descriptors; wakes their tasks.  0 or
 * an errno value (EINTR). */
static int io_wait(lloop *lp, long long ns) {
  struct timespec ts;
  if (ns >= 0) ts = ns_ts(ns);
  if (lp->epfd < 0 || lp->nfdwait + lp->nfutex == 0) {
    if (ns == 0) return 0;
    /* no descriptor to wait for (the set may hold disarmed ones) */
    return ppoll(NULL, 0, ns < 0 ? NULL : &ts, NULL) < 0 ? errno : 0;
  }
  struct epoll_event ev[64];
  int n = -1;
  if (ns > 0 && !epoll_pwait2_missing) {
    n = epoll_pwait2(lp->epfd, ev, 64, &ts, NULL);
    if (n < 0 && errno == ENOSYS) epoll_pwait2_missing = 1;
  }
  if (n < 0 && (ns <= 0 || epoll_pwait2_missing)) {
    int ms = ns < 0 ? -1 : ns > 2000000000LL * 1000000LL ? 2000000000 : (int)((ns + 999999) / 1000000);
    n = epoll_wait(lp->epfd, ev, 64, ms);
  }
  if (n < 0) return errno;
  for (int i = 0; i < n; i++) {
    if (lp->fw && ev[i].data.fd == lp->fw->efd) fw_event(lp);
    else fd_event(lp, ev[i].data.fd, ev[i].events);
  }
  return 0;
}

/* 1 when the run is over: target ended, or no task left. */
static int run_over(lloop *lp, ltask *target) {
  return target ? target->state >= T_DONE : lp->ntasks == 0;
}

/* Run the loop until target ends (NULL: until no task is left), the
 * deadline d passes or Ctrl-C.  RUN_*. */
static int loop_run(lua_State *L, lloop *lp, ltask *target, lipc_deadline *d) {
  unsigned gen = fork_gen;
  long long end = deadline_ns(d);
  for (;;) {
    if (run_over(lp, target)) return RUN_DONE;
    if (lipc_interrupted(d)) return RUN_EINTR;
    /* one round: the tasks ready now (the ones they make run next round) */
    for (int n = lp->nready; n > 0 && lp->nready > 0; n--) {
      ltask *t = NODE_TASK(lp->ready.next);
      list_unlink(&t->node);
      lp->nready--;
      resume(L, lp, t);
      if (fork_gen != gen) return RUN_FORKED;
      if (target && target->state >= T_DONE) return RUN_DONE;
    }
    if (run_over(lp, target)) return RUN_DONE;
    long long now = now_ns();
    long long timeout = -1;
    if (lp->nready > 0 || (end >= 0 && now >= end)) {
      timeout = 0;
    } else {
      if (lp->nheap > 0) timeout = lp->heap[0]->when > now ? lp->heap[0]->when - now : 0;
      if (end >= 0 && (timeout < 0 || end - now < timeout)) timeout = end - now;
      if (timeout < 0 && lp->nfdwait == 0 && lp->nfutex == 0) return RUN_DEADLOCK;
    }
    int err = io_wait(lp, timeout);
    if (err == EINTR) continue;   /* Ctrl-C is checked at the top */
    now = now_ns();
    expire_timers(lp, now);
    if (end >= 0 && now >= end && !run_over(lp, target)) return RUN_TIMEOUT;
  }
}

typedef struct run_args { lloop *lp; ltask *target; lipc_deadline *d; int rc; } run_args;

static int run_protected(lua_State *L) {
  run_args *a = lua_touserdata(L, 1);
  a->rc = loop_run(L, a->lp, a->target, a->d);
  return 0;
}

/* loop_run in a protected call, so that an error (out of memory) cannot
 * leave the loop marked running; the epoll set is closed when no task is
 * left. */
static int run(lua_State *L, lloop *lp, ltask *target, lipc_deadline *d) {
  unsigned gen = fork_gen;
  run_args a = { lp, target, d, RUN_DONE };
  lp->running = 1;
  lua_pushcfunction(L, run_protected);
  lua_pushlightuserdata(L, &a);
  int st = lua_pcall(L, 1, 0, 0);
  if (fork_gen == gen) {
    lp->running = 0;
    lp->current = NULL;
  } else {
    loop_check(L, lp);
  }
  if (lp->ntasks == 0) loop_idle(lp);
  if (st != LUA_OK) lua_error(L);
  if (a.rc == RUN_DEADLOCK)
    luaL_error(L, "deadlock: every task waits for another task or forever");
  return a.rc;
}

/* ---- the Lua API ------------------------------------------------------- */

static lloop *check_loop(lua_State *L) {
  lloop *lp = lua_touserdata(L, lua_upvalueindex(1));
  loop_check(L, lp);
  return lp;
}

static ltask *check_task(lua_State *L, int idx) {
  ltask *t = lua_touserdata(L, idx);
  if (t == NULL || lua_rawlen(L, idx) < sizeof *t || t->mark != &task_mark) luaL_typeerror(L, idx, TASK_MT);
  return t;
}

/* ipc.go(fn, ...): a new task running fn(...) when the loop runs. */
static int l_go(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lloop *lp = check_loop(L);
  int n = lua_gettop(L);
  if (lp->capheap <= lp->ntasks) {   /* one heap slot per task, reserved now */
    int cap = lp->capheap ? lp->capheap * 2 : 16;
    ltask **h = realloc(lp->heap, (size_t)cap * sizeof *h);
    if (h == NULL) return luaL_error(L, "not enough memory");
    lp->heap = h;
    lp->capheap = cap;
  }
  ltask *t = lua_newuserdatauv(L, sizeof *t, 3);
  memset(t, 0, sizeof *t);
  t->mark = &task_mark;
  list_init(&t->joiners);
  t->heap = -1;
  t->fd = -1;
  t->deadline = -1;
  t->loop = lp;
  t->gen = fork_gen;
  luaL_setmetatable(L, TASK_MT);
  int tidx = lua_gettop(L);
  lua_State *co = lua_newthread(L);
  lua_setiuservalue(L, tidx, 1);
  luaL_checkstack(co, n, "too many arguments");
  for (int i = 1; i <= n; i++) lua_pushvalue(L, i);
  lua_xmove(L, co, n);
  t->co = co;
  t->nargs = n - 1;
  t->state = T_NEW;
  push_loop(L);
  lua_getiuservalue(L, -1, 1);
  lua_pushvalue(L, tidx);
  lua_rawsetp(L, -2, t);
  lua_settop(L, tidx);
  lp->ntasks++;
  list_append(&lp->ready, &t->node);
  lp->nready++;
  return 1;
}

/* Raise the failures of tasks nobody joined (the first one's traceback,
 * and how many more), and forget them. */
static void raise_unobserved(lua_State *L) {
  push_loop(L);
  int lidx = lua_gettop(L);
  lua_getiuservalue(L, lidx, 2);
  lua_Integer n = (lua_Integer)lua_rawlen(L, lidx + 1);
  int found = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, lidx + 1, i);
    ltask *t = lua_touserdata(L, -1);
    if (!t->observed && found++ == 0) {
      lua_getiuservalue(L, -1, 3);   /* the traceback stays at lidx + 2 */
      lua_replace(L, -2);
    } else {
      lua_pop(L, 1);
    }
  }
  lua_newtable(L);
  lua_setiuservalue(L, lidx, 2);
  if (found == 0) { lua_settop(L, lidx - 1); return; }
  if (found > 1) {
    lua_pushfstring(L, "\n(and %d more failed tasks that nobody joined)", found - 1);
    lua_concat(L, 2);
  }
  lua_error(L);
}

/* ipc.loop([timeout]): run the tasks until none is left.  true, or the
 * timeout triple; raises the error of a failed task nobody joined. */
static int l_loop(lua_State *L) {
  lipc_deadline d;
  lipc_deadline_init(L, 1, &d);
  lloop *lp = check_loop(L);
  if (lp->running) return luaL_error(L, "ipc.loop: the loop is running already (inside a task, wait with its calls)");
  int rc = run(L, lp, NULL, &d);
  if (rc == RUN_EINTR) return lipc_error(L, EINTR, "loop", NULL);
  if (rc == RUN_TIMEOUT) return lipc_timeout(L);
  raise_unobserved(L);
  lua_pushboolean(L, 1);
  return 1;
}

/* Push the outcome of the ended task t: true, results... | nil, error |
 * nil, "cancelled". */
static int join_result(lua_State *L, ltask *t, int tidx) {
  if (t->state == T_DONE) {
    luaL_checkstack(L, t->nres + 1, "too many results");
    lua_pushboolean(L, 1);
    for (int i = 0; i < t->nres; i++) lua_pushvalue(t->co, t->resbase + i);
    lua_xmove(t->co, L, t->nres);
    return t->nres + 1;
  }
  lua_pushnil(L);
  if (t->state == T_CANCELLED) lua_pushliteral(L, "cancelled");
  else lua_getiuservalue(L, tidx, 2);
  return 2;
}

static int join_k(lua_State *L, int status, lua_KContext ctx);

/* Yield the running task me until t ends or the deadline at box passes. */
static int join_yield(lua_State *L, ltask *me, ltask *t, int box) {
  lipc_deadline *d = lua_touserdata(L, box);
  me->wait = W_JOIN;
  me->target = t;
  me->deadline = deadline_ns(d);
  return lua_yieldk(L, 0, (lua_KContext)box, join_k);
}

/* The continuation of a join inside a task. */
static int join_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  int box = (int)ctx;
  lua_settop(L, box);
  ltask *t = lua_touserdata(L, 1);
  lloop *lp = t->loop;
  ltask *me = lp->current;
  if (me->cancel) return luaL_error(L, "cancelled");
  if (t->state >= T_DONE) return join_result(L, t, 1);
  if (lipc_deadline_expired(lua_touserdata(L, box))) return lipc_timeout(L);
  return join_yield(L, me, t, box);
}

/* t:join([timeout]): wait for t to end.  true, results... | nil, error |
 * nil, "cancelled" | nil, "timeout", ETIMEDOUT.  Inside a task it yields;
 * outside it runs the loop until t ends. */
static int ltask_join(lua_State *L) {
  ltask *t = check_task(L, 1);
  lipc_deadline d;
  lipc_deadline_init(L, 2, &d);
  lua_settop(L, 2);
  if (t->gen != fork_gen) {
    lua_pushnil(L);
    lua_pushliteral(L, "not a task of this process");
    return 2;
  }
  t->observed = 1;
  if (t->state >= T_DONE) return join_result(L, t, 1);
  lloop *lp = t->loop;
  loop_check(L, lp);
  ltask *me = lp->current;
  if (me != NULL && me->co == L && lipc_in_task(L)) {
    if (me == t) return luaL_error(L, "a task cannot join itself");
    if (me->cancel) return luaL_error(L, "cancelled");
    lipc_deadline *box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = d;
    return join_yield(L, me, t, lua_gettop(L));
  }
  if (lp->running) return luaL_error(L, "join: the loop is running already (join from the task itself)");
  int rc = run(L, lp, t, &d);
  if (rc == RUN_EINTR) return lipc_error(L, EINTR, "join", NULL);
  if (rc == RUN_TIMEOUT) return lipc_timeout(L);
  if (rc == RUN_FORKED || t->gen != fork_gen) {
    lua_pushnil(L);
    lua_pushliteral(L, "not a task of this process");
    return 2;
  }
  return join_result(L, t, 1);
}

/* t:cancel(): its pending or next wait raises "cancelled" (its <close>
 * variables run as the error unwinds); a task that has not started yet
 * never runs.  true. */
static int ltask_cancel(lua_State *L) {
  ltask *t = check_task(L, 1);
  lua_pushboolean(L, 1);
  if (t->gen != fork_gen || t->state >= T_DONE) return 1;
  lloop *lp = t->loop;
  t->cancel = 1;
  if (t->state == T_NEW) {
    list_unlink(&t->node);
    lp->nready--;
    finish(L, lp, t, T_CANCELLED);
  } else if (t->state == T_WAITING) {
    wake(lp, t);
  } else if (t->state == T_RUNNING) {
    lipc_task_enter(t->co, 1);   /* itself: its next wait raises */
  }
  return 1;
}

/* t:status(): "running" (or ready to), "waiting", "done", "failed",
 * "cancelled". */
static int ltask_status(lua_State *L) {
  ltask *t = check_task(L, 1);
  lua_pushstring(L, STATE_NAMES[t->state]);
  return 1;
}

/* __tostring: "lipc.task(0x..., waiting)". */
static int ltask_tostring(lua_State *L) {
  ltask *t = check_task(L, 1);
  lua_pushfstring(L, "lipc.task(%p, %s)", (void *)t, STATE_NAMES[t->state]);
  return 1;
}

/* ipc.sleep's try: nothing to wait for but the deadline. */
static int sleep_try(lua_State *L, lipc_wait *w) {
  (void)L;
  w->sleep = 1;
  return LIPC_AGAIN;
}

/* ipc.sleep's result once the time has passed. */
static int sleep_stop(lua_State *L, lipc_wait *w, int err) {
  if (err != 0) return lipc_fail(L, err, w->call, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* ipc.sleep(seconds): true after that long; yields inside a task, sleeps
 * the process outside (Ctrl-C interrupts it). */
static int l_sleep(lua_State *L) {
  if (lua_type(L, 1) != LUA_TNUMBER) luaL_typeerror(L, 1, "number");
  lua_Number s = lua_tonumber(L, 1);
  luaL_argcheck(L, s >= 0, 1, "seconds must be >= 0");
  lipc_wait w;
  lipc_wait_init(L, &w, 0, sleep_try);
  lipc_deadline_init(L, 1, &w.d);
  w.call = "sleep";
  w.stop = sleep_stop;
  return lipc_run(L, &w);
}

/* __gc of the loop (lua_close): free what the C side holds. */
static int loop_gc(lua_State *L) {
  lloop *lp = lua_touserdata(L, 1);
  if (thread_loop == lp) thread_loop = NULL;
  loop_idle(lp);
  free(lp->heap);
  lp->heap = NULL;
  lp->nheap = lp->capheap = 0;
  return 0;
}

/* In a forked child: a new generation, and no running task on this
 * thread, so calls block. */
static void atfork_child(void) {
  fork_gen++;
  lipc_task_enter(NULL, 0);
}

static void register_atfork(void) { pthread_atfork(NULL, NULL, atfork_child); }

static const luaL_Reg task_methods[] = {
  {"join", ltask_join},
  {"cancel", ltask_cancel},
  {"status", ltask_status},
  {NULL, NULL}
};

/* Register lipc.task, the loop, ipc.go, ipc.loop and ipc.sleep. */
void lipc_open_task(lua_State *L) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, register_atfork);
  if (luaL_newmetatable(L, TASK_MT)) {
    luaL_newlib(L, task_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ltask_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  if (lua_getfield(L, LUA_REGISTRYINDEX, LOOP_KEY) != LUA_TUSERDATA) {
    lua_pop(L, 1);
    lloop *lp = lua_newuserdatauv(L, sizeof *lp, 2);
    memset(lp, 0, sizeof *lp);
    lp->epfd = -1;
    lp->gen = fork_gen;
    list_init(&lp->ready);
    lua_newtable(L);
    lua_setiuservalue(L, -2, 1);   /* anchors: [lightuserdata task] = task */
    lua_newtable(L);
    lua_setiuservalue(L, -2, 2);   /* failed tasks nobody joined yet */
    lua_newtable(L);
    lua_pushcfunction(L, loop_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, LOOP_KEY);
  }
  thread_loop = lua_touserdata(L, -1);
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, l_go, 1);
  lua_setfield(L, -3, "go");
  lua_pushcclosure(L, l_loop, 1);
  lua_setfield(L, -2, "loop");
  lua_pushcfunction(L, l_sleep);
  lua_setfield(L, -2, "sleep");
}
