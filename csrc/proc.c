/*
 * proc.c - processes: ipc.fork, ipc.spawn, ipc.exec, ipc.wait, ipc.exit,
 * ipc.getpid, ipc.getppid, and the lipc.process handle.
 *
 * A process handle holds a pidfd (pidfd_open, close-on-exec): waits poll
 * it (so Ctrl-C and timeouts work) and reap with waitid(P_PIDFD), which
 * can never touch a recycled pid; kill uses pidfd_send_signal.  Every
 * reap by lipc is remembered (a small per-process cache), so waiting
 * again returns the same result.  ipc.exec uses vfork (the child only
 * makes raw system calls, then execve; exec errors come back through the
 * shared memory), with every signal, glibc's internal ones included,
 * reset to its default and an empty signal mask: posix_spawn leaves
 * signals 32 and 33 ignored in the child.  The child may also start a
 * new session or process group, take extra descriptors (fds=), a umask,
 * or a whole new environment (clearenv=).
 */
#include "core.h"
#include "stream.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* ---- the reap cache ---------------------------------------------------- */

#define CACHE_N 1024
static struct { pid_t pid; int status; } cache[CACHE_N];
static unsigned cache_next;
static pid_t cache_owner;

/* Forget the cache when this is a new process (after fork). */
static void cache_check(void) {
  pid_t me = getpid();
  if (cache_owner != me) {
    memset(cache, 0, sizeof cache);
    cache_next = 0;
    cache_owner = me;
  }
}

/* Remember that pid was reaped with status. */
static void cache_put(pid_t pid, int status) {
  cache_check();
  for (unsigned i = 0; i < CACHE_N; i++)
    if (cache[i].pid == pid) { cache[i].status = status; return; }
  cache[cache_next].pid = pid;
  cache[cache_next].status = status;
  cache_next = (cache_next + 1) % CACHE_N;
}

/* The cached status of pid; 0 when unknown. */
static int cache_get(pid_t pid, int *status) {
  cache_check();
  for (unsigned i = 0; i < CACHE_N; i++)
    if (cache[i].pid == pid) { *status = cache[i].status; return 1; }
  return 0;
}

/* A new child got pid: an old entry for it is stale. */
static void cache_drop(pid_t pid) {
  cache_check();
  for (unsigned i = 0; i < CACHE_N; i++)
    if (cache[i].pid == pid) cache[i].pid = 0;
}

/* ---- small helpers ----------------------------------------------------- */

/* pidfd_open(2) through syscall (glibc < 2.36 lacks the wrapper). */
static int sys_pidfd_open(pid_t pid) {
  return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* pidfd_send_signal(2). */
static int sys_pidfd_send_signal(int fd, int sig) {
  return (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
}

/* Push the outcome of a wait status: "exited", code | "signaled", signo. */
static int push_status(lua_State *L, int status) {
  if (WIFEXITED(status)) {
    lua_pushliteral(L, "exited");
    lua_pushinteger(L, WEXITSTATUS(status));
  } else {
    lua_pushliteral(L, "signaled");
    lua_pushinteger(L, WTERMSIG(status));
  }
  return 2;
}

/* A wait status from waitid's siginfo. */
static int status_of(const siginfo_t *si) {
  if (si->si_code == CLD_EXITED) return (si->si_status & 0xff) << 8;
  return si->si_status & 0x7f;  /* killed or dumped */
}

/* Reset every signal to its default and empty the mask (in a child). */
/* Raw system calls only (safe in a vfork child): glibc's sigaction
 * refuses its internal signals 32 and 33, and an all-zero kernel
 * sigaction is SIG_DFL with no flags on every architecture. */
static void reset_signals(void) {
  unsigned long long ksa[8];
  memset(ksa, 0, sizeof ksa);
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) (void)syscall(SYS_rt_sigaction, sig, ksa, NULL, (size_t)(_NSIG / 8));
  unsigned long long none[2] = {0, 0};
  (void)syscall(SYS_rt_sigprocmask, SIG_SETMASK, none, NULL, (size_t)(_NSIG / 8));
}

/* ---- fork, wait, exit -------------------------------------------------- */

/* ipc.fork(): 0 in the child, the child's pid in the parent. */
static int lproc_fork(lua_State *L) {
  pid_t pid = lipc_fork();
  if (pid < 0) return lipc_error(L, errno, "fork", NULL);
  if (pid > 0) cache_drop(pid);
  lua_pushinteger(L, pid);
  return 1;
}

/* One reap of pid that never blocks: through pidfd (waitid P_PIDFD, which
 * cannot touch a recycled pid) when >= 0, else waitpid.  0 with *status
 * (remembered in the cache), EAGAIN while it runs, EINTR, or an errno
 * value (ECHILD unless lipc reaped it before: the cache has it then). */
static int reap_once(pid_t pid, int pidfd, int *status) {
  int err;
  if (pidfd >= 0) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG) == 0) {
      if (si.si_pid == 0) return EAGAIN;
      *status = status_of(&si);
      cache_put(pid, *status);
      return 0;
    }
    err = errno;
  } else {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == 0) return EAGAIN;
    if (r > 0) { cache_put(pid, *status); return 0; }
    err = errno;
  }
  if (err == ECHILD && cache_get(pid, status)) return 0;
  return err;
}

/* ipc.exit(code): leave at once, flushing stdio but running no Lua GC. */
static int lproc_exit(lua_State *L) {
  int code;
  if (lua_isboolean(L, 1)) code = lua_toboolean(L, 1) ? 0 : 1;
  else code = (int)lipc_optrange(L, 1, 0, 0, 255);
  fflush(NULL);
  _exit(code);
  return 0;
}

/* ipc.getpid() */
static int lproc_getpid(lua_State *L) {
  lua_pushinteger(L, getpid());
  return 1;
}

/* ipc.getppid() */
static int lproc_getppid(lua_State *L) {
  lua_pushinteger(L, getppid());
  return 1;
}

/* ---- the process handle ------------------------------------------------ */

typedef struct lproc {
  lipc_handle h;     /* h.fd: the pidfd, or -1 when pidfd_open failed */
  pid_t pid;
  int reaped;        /* status below is valid */
  int status;
} lproc;

static int process_release(lipc_handle *h, int remove_name);
static void process_describe(lipc_handle *h, luaL_Buffer *b);
static void process_audit(lua_State *L, lipc_handle *h);

static const lipc_class process_class = {
  "lipc.process", "process", sizeof(lproc), process_release, process_describe, process_audit, 0
};

/* Close the pidfd; reap the child if it already exited (never blocks,
 * never kills), so a forgotten finished child is not left a zombie: also
 * when pidfd_open failed (out of descriptors, an old kernel), through
 * waitpid as p:status() does. */
static int process_release(lipc_handle *h, int remove_name) {
  (void)remove_name;
  lproc *p = (lproc *)h;
  if (!p->reaped && h->owner == getpid()) {
    int status;
    if (reap_once(p->pid, h->fd, &status) == 0) {
      p->reaped = 1;
      p->status = status;
    }
  }
  int err = 0;
  if (h->fd >= 0 && close(h->fd) != 0 && errno != EINTR) err = errno;
  h->fd = -1;
  return err;
}

/* "pid=123" or "pid=123, exited 0" */
static void process_describe(lipc_handle *h, luaL_Buffer *b) {
  lproc *p = (lproc *)h;
  char tmp[64];
  if (!p->reaped) snprintf(tmp, sizeof tmp, "pid=%ld", (long)p->pid);
  else if (WIFEXITED(p->status)) snprintf(tmp, sizeof tmp, "pid=%ld, exited %d", (long)p->pid, WEXITSTATUS(p->status));
  else snprintf(tmp, sizeof tmp, "pid=%ld, signaled %d", (long)p->pid, WTERMSIG(p->status));
  luaL_addstring(b, tmp);
}

/* audit: pid= and fd= */
static void process_audit(lua_State *L, lipc_handle *h) {
  lua_pushinteger(L, ((lproc *)h)->pid);
  lua_setfield(L, -2, "pid");
  if (h->fd >= 0) {
    lua_pushinteger(L, h->fd);
    lua_setfield(L, -2, "fd");
  }
}

/* Push a new closed process handle with its field table as user value. */
static lproc *process_new(lua_State *L) {
  lproc *p = lipc_new(L, &process_class, 1);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  return p;
}

/* Put a started child in p (the handle at idx): pidfd, pid field. */
static void process_start(lua_State *L, int idx, lproc *p, pid_t pid) {
  cache_drop(pid);
  p->pid = pid;
  /* the child is ours and unreaped, so its pid cannot be recycled yet */
  p->h.fd = sys_pidfd_open(pid);
  p->h.open = 1;
  lua_getiuservalue(L, idx, 1);
  lua_pushinteger(L, pid);
  lua_setfield(L, -2, "pid");
  lua_pop(L, 1);
}

/* "<pid>" for error messages. */
static const char *pidstr(pid_t pid, char *buf, size_t len) {
  snprintf(buf, len, "%ld", (long)pid);
  return buf;
}

/* The end of a wait in vain: timeout, or the error naming the pid. */
static int proc_stop(lua_State *L, lipc_wait *w, int err) {
  char what[32];
  return lipc_fail(L, err, w->call, pidstr((pid_t)w->acc[0], what, sizeof what));
}

/* One try of a wait for a process: w->p is the handle (NULL: the raw pid
 * in w->acc[0]); w->acc[1] is 1 when the stack holds at 3 the slot of a
 * temporary pidfd (for a raw pid, or a handle whose pidfd_open failed).
 * Reap, else wait for the pidfd to turn readable; with no pidfd at all
 * (out of descriptors) the wait path backs off. */
static int proc_trywait(lua_State *L, lipc_wait *w) {
  lproc *p = w->p;
  pid_t pid = (pid_t)w->acc[0];
  int pidfd = -1, status = 0;
  if (p != NULL) {
    if (!p->h.open) return lipc_closed_error(L, &process_class);  /* closed by another task */
    if (p->reaped) return push_status(L, p->status);
    pidfd = p->h.fd;
  }
  int err = reap_once(pid, pidfd, &status);
  if (err == 0) {
    if (p != NULL) {
      p->reaped = 1;
      p->status = status;
    }
    return push_status(L, status);
  }
  if (err == EINTR) return LIPC_EINTR;
  if (err != EAGAIN) return proc_stop(L, w, err);
  if (pidfd < 0 && w->acc[1]) {
    int *slot = lua_touserdata(L, 3);
    if (*slot < 0 && !lipc_deadline_expired(&w->d)) {
      *slot = sys_pidfd_open(pid);
      if (*slot >= 0) lipc_fdslot_arm(L, 3);
    }
    pidfd = *slot;
  }
  if (pidfd >= 0) {
    w->fd = pidfd;
    w->events = POLLIN;
  }
  return LIPC_AGAIN;
}

/* Wait for the process p (NULL: the raw pid) with the timeout at 2; call
 * names the errors. */
static int proc_wait(lua_State *L, lproc *p, pid_t pid, const char *call) {
  lipc_wait w;
  lipc_wait_init(L, &w, 2, proc_trywait);
  w.p = p;
  w.call = call;
  w.stop = proc_stop;
  w.acc[0] = pid;
  if (p == NULL || p->h.fd < 0) {
    lua_settop(L, 2);
    *(int *)lua_newuserdatauv(L, sizeof(int), 0) = -1;  /* the temporary pidfd */
    w.acc[1] = 1;
  }
  return lipc_run(L, &w);
}

/* ipc.wait(pid, timeout): "exited", code | "signaled", signo | nil, "timeout". */
static int lproc_wait(lua_State *L) {
  pid_t pid = (pid_t)lipc_checkrange(L, 1, 1, INT32_MAX);
  return proc_wait(L, NULL, pid, "waitpid");
}

/* p:wait(timeout) -> "exited", code | "signaled", signo | nil, "timeout" */
static int lprocess_wait(lua_State *L) {
  lproc *p = lipc_check(L, 1, &process_class);
  return proc_wait(L, p, p->pid, "wait");
}

/* p:kill([sig [, "process"|"group"]]) -> true; the process is signalled
 * through its pidfd (never a recycled pid).  "group" signals the process
 * group the child leads (exec's session= or group=) with kill(-pid): the
 * group outlives its leader while members remain, so this works after the
 * child was reaped too (its id cannot be reused while the group exists). */
static int lprocess_kill(lua_State *L) {
  static const char *const targets[] = {"process", "group", NULL};
  lproc *p = lipc_check(L, 1, &process_class);
  int sig = lua_isnoneornil(L, 2) ? SIGTERM : lipc_checksignal(L, 2);
  int group = luaL_checkoption(L, 3, "process", targets) == 1;
  char what[32];
  snprintf(what, sizeof what, "%s%ld", group ? "-" : "", (long)p->pid);
  if (group) {
    if (kill(-p->pid, sig) != 0) return lipc_error(L, errno, "kill", what);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (p->reaped) return lipc_error(L, ESRCH, "kill", what);
  int rc = p->h.fd >= 0 ? sys_pidfd_send_signal(p->h.fd, sig) : kill(p->pid, sig);
  if (rc != 0) return lipc_error(L, errno, "kill", what);
  lua_pushboolean(L, 1);
  return 1;
}

/* p:fileno() -> the pidfd (readable once the process has exited). */
static int lprocess_fileno(lua_State *L) {
  lproc *p = lipc_check(L, 1, &process_class);
  if (p->h.fd < 0) return luaL_error(L, "lipc.process has no pidfd (pidfd_open failed)");
  lua_pushinteger(L, p->h.fd);
  return 1;
}

/* p:status() -> nil while running (without reaping it) or the same as wait. */
static int lprocess_poll(lua_State *L) {
  lproc *p = lipc_check(L, 1, &process_class);
  if (!p->reaped) {
    int err;
    while ((err = reap_once(p->pid, p->h.fd, &p->status)) == EINTR) {}
    if (err == EAGAIN) { lua_pushnil(L); return 1; }
    if (err) return lipc_error(L, err, "wait", NULL);
    p->reaped = 1;
  }
  return push_status(L, p->status);
}

/* __index: methods first, then the fields (pid, stdin, stdout, stderr). */
static int lprocess_index(lua_State *L) {
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  luaL_checkudata(L, 1, process_class.name);
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

/* ---- spawn ------------------------------------------------------------- */

/* Message handler of the spawned function: the traceback. */
static int spawn_msgh(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* In the child: run the function at 2 with args 3..top and exit. */
static void spawn_child(lua_State *L, int nargs) {
  reset_signals();
  cache_check();
  lua_pushcfunction(L, spawn_msgh);
  lua_insert(L, 2);                       /* msgh, fn, args... */
  int code = 0;
  if (lua_pcall(L, nargs, 1, 2) != LUA_OK) {
    fprintf(stderr, "lipc.spawn: %s\n", lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
    code = 1;
  } else if (lua_type(L, -1) == LUA_TNUMBER) {
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    code = isint ? (int)(v & 0xff) : 1;
  } else if (lua_type(L, -1) == LUA_TBOOLEAN) {
    code = lua_toboolean(L, -1) ? 0 : 1;
  }
  fflush(NULL);
  _exit(code);
}

/* Add to the set at sidx every table and userdata reachable from the
 * value at idx: the value, the keys and values of a table, the user values
 * of a userdata (a semaphore keeps its region, a channel its transports),
 * to a bounded depth.  Metatables are not followed. */
static void keep_collect(lua_State *L, int idx, int sidx, int depth) {
  idx = lua_absindex(L, idx);
  int t = lua_type(L, idx);
  if ((t != LUA_TTABLE && t != LUA_TUSERDATA) || depth > 16) return;
  lua_pushvalue(L, idx);
  if (lua_rawget(L, sidx) != LUA_TNIL) { lua_pop(L, 1); return; }  /* seen */
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, sidx);
  luaL_checkstack(L, 4, "keep");
  if (t == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      keep_collect(L, -2, sidx, depth + 1);
      keep_collect(L, -1, sidx, depth + 1);
      lua_pop(L, 1);
    }
  } else {
    for (int i = 1; lua_getiuservalue(L, idx, i) != LUA_TNONE; i++) {
      keep_collect(L, -1, sidx, depth + 1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
}

/* In a spawned child: close every open lipc object holding a descriptor
 * above 2 that is not in the set at sidx (stdio stays).  The child is not
 * the owner, so no name is removed. */
static void keep_only(lua_State *L, int sidx) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, LIPC_LIVE_KEY) != LUA_TTABLE) { lua_pop(L, 1); return; }
  int live = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, live)) {
    lua_pop(L, 1);
    lipc_handle *h = lipc_toany(L, -1);
    if (h != NULL && h->open && h->fd > 2) {
      lua_pushvalue(L, -1);
      if (lua_rawget(L, sidx) == LUA_TNIL) (void)lipc_release(h);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

/* What the table form of spawn asks of the child. */
typedef struct spawn_opts { int keep, session, group; } spawn_opts;

/* Check the keys of the table at 1: integers 1..n (a sequence, named
 * what in the error), and strings among known (options). */
static void check_seq_options(lua_State *L, lua_Integer n, const char *what, const char *const known[]) {
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TNUMBER) {
      int isint = 0;
      lua_Integer k = lua_tointegerx(L, -1, &isint);
      if (!isint || k < 1 || k > n) luaL_argerror(L, 1, lua_pushfstring(L, "%s must be a sequence 1..n", what));
      continue;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_argerror(L, 1, lua_pushfstring(L, "unknown option (option keys must be strings, got %s)",
                                          luaL_typename(L, -1)));
    const char *k = lua_tostring(L, -1);
    int ok = 0;
    for (int i = 0; known[i]; i++)
      if (strcmp(k, known[i]) == 0) ok = 1;
    if (!ok) luaL_argerror(L, 1, lua_pushfstring(L, "unknown option '%s'", k));
  }
}

/* The table form ipc.spawn{ fn, args..., keep = {...}, session =, group = }
 * at 1: check it and replace the stack by: the keep set (the objects in
 * keep and among the arguments, with what they hold; nil without keep),
 * fn, args... */
static void spawn_unpack(lua_State *L, spawn_opts *o) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  luaL_argcheck(L, n >= 1 && n < 100000, 1, "function expected at [1]");
  static const char *const known[] = {"keep", "session", "group", NULL};
  check_seq_options(L, n, "arguments", known);
  o->session = lipc_optbool(L, 1, "session", 0);
  o->group = lipc_optbool(L, 1, "group", 0);
  if (lua_rawgeti(L, 1, 1) != LUA_TFUNCTION)
    luaL_argerror(L, 1, lua_pushfstring(L, "function expected at [1], got %s", luaL_typename(L, -1)));
  lua_pop(L, 1);
  lua_settop(L, 1);
  lua_newtable(L);                          /* the set, at 2 */
  lua_pushliteral(L, "keep");
  int t = lua_rawget(L, 1);
  if (t != LUA_TNIL && t != LUA_TTABLE) lipc_opterror(L, 1, "keep", "table expected, got %s", luaL_typename(L, -1));
  o->keep = t == LUA_TTABLE;
  if (o->keep) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      keep_collect(L, -1, 2, 0);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  if (!o->keep) {                           /* nothing is closed: no set */
    lua_pushnil(L);
    lua_replace(L, 2);
  }
  luaL_checkstack(L, (int)n, "too many arguments");
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    if (i > 1 && o->keep) keep_collect(L, -1, 2, 0);
  }
  lua_remove(L, 1);                         /* set, fn, args... */
}

/* ipc.spawn(fn, ...) or ipc.spawn{ fn, args..., keep = {...}, session =,
 * group = } -> a lipc.process running fn(...) in a child.  With keep, the
 * child closes every lipc descriptor but those kept; session/group: the
 * child leads a new session / process group (as ipc.exec's). */
static int lproc_spawn(lua_State *L) {
  spawn_opts o = {0, 0, 0};
  if (lua_type(L, 1) == LUA_TTABLE) {
    spawn_unpack(L, &o);                  /* set or nil, fn, args... */
  } else {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_pushnil(L);
    lua_insert(L, 1);                     /* nil, fn, args... */
  }
  int nargs = lua_gettop(L) - 2;
  lproc *p = process_new(L);
  int pidx = lua_gettop(L);
  pid_t pid = lipc_fork();
  if (pid < 0) return lipc_error(L, errno, "fork", NULL);
  if (pid == 0) {
    lua_settop(L, pidx - 1);              /* set or nil at 1, fn at 2, args... */
    if (o.session) (void)setsid();
    else if (o.group) (void)setpgid(0, 0);
    if (o.keep) keep_only(L, 1);
    spawn_child(L, nargs);
  }
  if (o.group && !o.session) (void)setpgid(pid, pid);  /* both sides: no window for kill(-pid) */
  process_start(L, pidx, p, pid);
  return 1;
}

/* ---- exec -------------------------------------------------------------- */

enum { IO_INHERIT, IO_NULL, IO_PIPE, IO_FD, IO_STDOUT };

static const char *const STDIO_KEYS[3] = {"stdin", "stdout", "stderr"};

typedef struct exec_io {
  int kind;
  int fd;          /* IO_FD: the source descriptor (possibly a temp dup) */
  int tmp;         /* fd is our temporary duplicate: close after spawn */
  int child_end;   /* IO_PIPE: the child's end */
} exec_io;

/* Push the option key of the exec table at 1, raw: the keys were checked
 * raw (check_exec_table), and an __index could hand out a value nothing
 * anchors (a string freed before its use) or change argv behind the checks. */
static int exec_opt(lua_State *L, const char *key) {
  lua_pushstring(L, key);
  return lua_rawget(L, 1);
}

/* Read the stdio option key of the table at 1 into io (no resources). */
static void check_stdio(lua_State *L, int i, exec_io *io) {
  int t = exec_opt(L, STDIO_KEYS[i]);
  io->kind = IO_INHERIT;
  io->fd = io->child_end = -1;
  io->tmp = 0;
  if (t == LUA_TSTRING) {
    const char *s = lua_tostring(L, -1);
    if (strcmp(s, "pipe") == 0) io->kind = IO_PIPE;
    else if (strcmp(s, "null") == 0) io->kind = IO_NULL;
    else if (strcmp(s, "inherit") == 0) io->kind = IO_INHERIT;
    else if (i == 2 && strcmp(s, "stdout") == 0) io->kind = IO_STDOUT;  /* 2>&1 */
    else lipc_opterror(L, 1, STDIO_KEYS[i], "\"pipe\", \"null\", \"inherit\"%s or a lipc object expected, got \"%s\"",
                       i == 2 ? ", \"stdout\"" : "", s);
  } else if (t != LUA_TNIL) {
    lipc_handle *h = lipc_toany(L, -1);
    if (h == NULL && t == LUA_TNUMBER) {
      int isint = 0;
      lua_Integer v = lua_tointegerx(L, -1, &isint);
      if (!isint || v < 0 || v > INT_MAX)
        lipc_opterror(L, 1, STDIO_KEYS[i], "descriptor out of range");
      io->fd = (int)v;
    } else if (h == NULL) {
      lipc_opterror(L, 1, STDIO_KEYS[i], "\"pipe\", \"null\", \"inherit\" or a lipc object expected, got %s",
                    luaL_typename(L, -1));
    } else {
      if (!h->open) lipc_closed_error(L, h->cls);
      if (h->fd < 0) lipc_opterror(L, 1, STDIO_KEYS[i], "%s has no descriptor", h->cls->name);
      io->fd = h->fd;
    }
    io->kind = IO_FD;
  }
  lua_pop(L, 1);
}

/* Check the exec table at 1: argv strings 1..n, known keys only; returns n. */
static int check_exec_table(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  luaL_argcheck(L, n >= 1, 1, "program name expected at [1]");
  luaL_argcheck(L, n < 100000, 1, "too many arguments");
  static const char *const known[] = {"stdin", "stdout", "stderr", "env", "cwd", "clearenv",
                                      "session", "group", "fds", "umask", NULL};
  check_seq_options(L, n, "argv", known);
  for (lua_Integer i = 1; i <= n; i++) {
    int t = lua_rawgeti(L, 1, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      luaL_argerror(L, 1, lua_pushfstring(L, "argv[%I] must be a string (got %s)", i, luaL_typename(L, -1)));
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (memchr(s, '\0', len)) luaL_argerror(L, 1, lua_pushfstring(L, "argv[%I] contains a NUL byte", i));
    if (i == 1 && len == 0) luaL_argerror(L, 1, "empty program name");
    lua_pop(L, 1);
  }
  return (int)n;
}

/* Build the environment array at the top of the stack (a userdata holding
 * char*[]; strings anchored in the table pushed below it).  Returns it,
 * or NULL when env is absent (inherit environ). */
static char **build_env(lua_State *L, int clear) {
  int t = exec_opt(L, "env");
  if (t == LUA_TNIL && !clear) { lua_pop(L, 1); return NULL; }
  if (t == LUA_TNIL) {                      /* clearenv without env: empty */
    lua_pop(L, 1);
    lua_newtable(L);
  } else if (t != LUA_TTABLE) {
    lipc_opterror(L, 1, "env", "table expected, got %s", luaL_typename(L, -1));
  }
  int envt = lua_gettop(L);
  /* check the map first */
  size_t extra = 0;
  lua_pushnil(L);
  while (lua_next(L, envt)) {
    if (lua_type(L, -2) != LUA_TSTRING) lipc_opterror(L, 1, "env", "keys must be strings");
    size_t kl;
    const char *k = lua_tolstring(L, -2, &kl);
    if (kl == 0 || memchr(k, '=', kl) || memchr(k, '\0', kl))
      lipc_opterror(L, 1, "env", "invalid variable name '%s'", k);
    int vt = lua_type(L, -1);
    if (vt == LUA_TSTRING || vt == LUA_TNUMBER) {
      size_t vl;
      const char *v = lua_tolstring(L, -1, &vl);  /* converts a number value in place; keys are left alone, as lua_next needs */
      if (memchr(v, '\0', vl)) lipc_opterror(L, 1, "env", "value of '%s' contains a NUL byte", k);
      extra++;
    } else if (!(vt == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
      lipc_opterror(L, 1, "env", "value of '%s' must be a string or false", k);
    }
    lua_pop(L, 1);
  }
  size_t n = 0;
  while (!clear && environ && environ[n]) n++;  /* clearenv: env is the whole environment */
  lua_newtable(L);                          /* anchor for new strings */
  int anchor = lua_gettop(L);
  char **envp = lua_newuserdatauv(L, (n + extra + 1) * sizeof(char *), 0);
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    const char *e = environ[i];
    const char *eq = strchr(e, '=');
    size_t kl = eq ? (size_t)(eq - e) : strlen(e);
    lua_pushlstring(L, e, kl);
    int kt = lua_rawget(L, envt);
    lua_pop(L, 1);
    if (kt == LUA_TNIL) envp[m++] = (char *)e;  /* kept; environ is not changed meanwhile */
  }
  lua_Integer na = 0;
  lua_pushnil(L);
  while (lua_next(L, envt)) {
    if (lua_type(L, -1) != LUA_TBOOLEAN && m < n + extra) {  /* bound: a finalizer may add keys */
      lua_pushvalue(L, -2);
      lua_pushliteral(L, "=");
      lua_pushvalue(L, -3);
      lua_concat(L, 3);                     /* "K=V" (a number value converted) */
      envp[m++] = (char *)lua_tostring(L, -1);
      lua_rawseti(L, anchor, ++na);         /* anchored: the pointer stays valid */
    }
    lua_pop(L, 1);
  }
  envp[m] = NULL;
  return envp;
}

/* An extra descriptor of fds=: the child gets src at dst; tmp is the
 * parent's close-on-exec duplicate of src above every dst, so no dup2 in
 * the child can overwrite a source before it is used. */
typedef struct extra_fd { int dst, src, tmp; } extra_fd;

/* Read fds = { [n] = obj_or_fd } of the exec table at 1 into a userdata
 * left on the stack (with the table below it); *count entries, or NULL. */
static extra_fd *check_fds(lua_State *L, int *count) {
  *count = 0;
  int t = exec_opt(L, "fds");
  if (t == LUA_TNIL) { lua_pop(L, 1); return NULL; }
  if (t != LUA_TTABLE) lipc_opterror(L, 1, "fds", "table expected, got %s", luaL_typename(L, -1));
  int ft = lua_gettop(L);
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, ft)) {
    lua_pop(L, 1);
    if (++n > 1024) lipc_opterror(L, 1, "fds", "too many descriptors (1024 at most)");
  }
  extra_fd *x = lua_newuserdatauv(L, (n ? n : 1) * sizeof *x, 0);
  size_t m = 0;
  lua_pushnil(L);
  while (lua_next(L, ft)) {
    int isint = 0;
    lua_Integer k = lua_type(L, -2) == LUA_TNUMBER ? lua_tointegerx(L, -2, &isint) : 0;
    if (!isint || k < 3 || k > INT_MAX - 1)
      lipc_opterror(L, 1, "fds", "keys must be descriptor numbers >= 3");
    int src;
    lipc_handle *h = lipc_toany(L, -1);
    if (h != NULL) {
      if (!h->open) lipc_closed_error(L, h->cls);
      if (h->fd < 0) lipc_opterror(L, 1, "fds", "%s has no descriptor", h->cls->name);
      src = h->fd;
    } else if (lua_type(L, -1) == LUA_TNUMBER) {
      lua_Integer v = lua_tointegerx(L, -1, &isint);
      if (!isint || v < 0 || v > INT_MAX) lipc_opterror(L, 1, "fds", "descriptor out of range");
      src = (int)v;
    } else {
      lipc_opterror(L, 1, "fds", "[%I]: a lipc object or a descriptor expected, got %s", k, luaL_typename(L, -1));
      src = -1;
    }
    lua_pop(L, 1);
    if (m < n) {                            /* bound: a finalizer may add keys */
      x[m].dst = (int)k;
      x[m].src = src;
      x[m].tmp = -1;
      m++;
    }
  }
  *count = (int)m;
  return x;
}

/* The PATH of the environment envp (NULL: ours). */
static const char *env_path(char **envp) {
  if (envp == NULL) return getenv("PATH");
  for (char **e = envp; *e; e++)
    if (strncmp(*e, "PATH=", 5) == 0) return *e + 5;
  return NULL;
}

/* Resolve prog along path like execvp (slash: as is).  Writes the
 * candidate into out; returns 0 or the errno of the search. */
static int resolve(const char *prog, const char *path, char *out, size_t outlen) {
  if (strchr(prog, '/')) {
    if (strlen(prog) >= outlen) return ENAMETOOLONG;
    strcpy(out, prog);
    return 0;
  }
  if (path == NULL) path = "/bin:/usr/bin";
  int err = ENOENT;
  const char *p = path;
  for (;;) {
    const char *colon = strchr(p, ':');
    size_t dl = colon ? (size_t)(colon - p) : strlen(p);
    if (dl + 1 + strlen(prog) + 1 <= outlen) {
      if (dl == 0) snprintf(out, outlen, "%s", prog);
      else snprintf(out, outlen, "%.*s/%s", (int)dl, p, prog);
      struct stat st;
      if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
        if (access(out, X_OK) == 0) return 0;
        err = EACCES;
      }
    }
    if (!colon) break;
    p = colon + 1;
  }
  return err;
}

/* What the vfork child does: all prepared by the parent. */
typedef struct exec_plan {
  const char *path;
  char **argv, **envp;
  int kind[3], src[3];
  int dirfd;
  int session, group;  /* setsid() / setpgid(0, 0) */
  int umask;           /* -1: inherit */
  extra_fd *x;         /* fds=: nx extra descriptors */
  int nx;
  volatile int err;   /* set by the child when exec fails (shared memory) */
} exec_plan;

/* In the vfork child: signals, stdio, cwd, execve; never returns. */
static __attribute__((noinline, noreturn)) void exec_child(exec_plan *pl) {
  reset_signals();
  if (pl->session && setsid() < 0) { pl->err = errno; _exit(127); }
  if (pl->group && !pl->session && setpgid(0, 0) != 0) { pl->err = errno; _exit(127); }
  for (int i = 0; i < 3; i++) {
    int rc = 0;
    if (pl->kind[i] == IO_STDOUT) {
      rc = dup2(1, 2);
    } else if (pl->kind[i] == IO_PIPE || pl->kind[i] == IO_FD) {
      if (pl->src[i] == i) rc = fcntl(i, F_SETFD, 0);  /* keep it across exec */
      else rc = dup2(pl->src[i], i);
    } else if (pl->kind[i] == IO_NULL) {
      int fd = open("/dev/null", i == 0 ? O_RDONLY : O_WRONLY);
      if (fd < 0) rc = -1;
      else if (fd != i) { rc = dup2(fd, i); close(fd); }
    }
    if (rc < 0) { pl->err = errno; _exit(127); }
  }
  if (pl->dirfd >= 0 && fchdir(pl->dirfd) != 0) { pl->err = errno; _exit(127); }
  /* after stdio and fchdir: a target may be the number of their sources */
  for (int j = 0; j < pl->nx; j++)
    if (dup2(pl->x[j].tmp, pl->x[j].dst) < 0) { pl->err = errno; _exit(127); }
  if (pl->umask >= 0) umask((mode_t)pl->umask);
  execve(pl->path, pl->argv, pl->envp);
  pl->err = errno ? errno : ENOEXEC;
  _exit(127);
}

/* Start the plan with vfork, every signal blocked meanwhile (no handler
 * may run on the child's borrowed stack).  0 and *pid, or an errno. */
static int run_plan(exec_plan *pl, pid_t *pid) {
  unsigned long long all[2] = {~0ULL, ~0ULL}, old[2] = {0, 0};
  size_t ss = (size_t)(_NSIG / 8);
  pl->err = 0;
  (void)syscall(SYS_rt_sigprocmask, SIG_SETMASK, all, old, ss);
  pid_t p = vfork();
  if (p == 0) exec_child(pl);
  int err = p < 0 ? errno : 0;
  (void)syscall(SYS_rt_sigprocmask, SIG_SETMASK, old, NULL, ss);
  if (err) return err;
  if (pl->err) {
    /* the child has already exited: reap it */
    while (waitpid(p, NULL, 0) < 0 && errno == EINTR) {}
    return pl->err;
  }
  *pid = p;
  return 0;
}

/* Close the parent's temporaries of the stdio and fds= setup. */
static void close_ios(exec_io *io, int dirfd, extra_fd *x, int nx) {
  for (int j = 0; j < nx; j++) {
    if (x[j].tmp >= 0) close(x[j].tmp);
    x[j].tmp = -1;
  }
  for (int i = 0; i < 3; i++) {
    if (io[i].tmp && io[i].fd >= 0) close(io[i].fd);
    if (io[i].child_end >= 0) close(io[i].child_end);
    io[i].fd = io[i].child_end = -1;
    io[i].tmp = 0;
  }
  if (dirfd >= 0) close(dirfd);
}

/* A failed exec: close the temporaries and the parent's pipe ends. */
static void exec_cleanup(exec_io *io, int dirfd, lipc_stream *ends[3], extra_fd *x, int nx) {
  close_ios(io, dirfd, x, nx);
  for (int i = 0; i < 3; i++)
    if (ends[i]) (void)lipc_release(&ends[i]->h);
}

/* ipc.exec{prog, args..., stdin=, stdout=, stderr=, env=, cwd=, clearenv=,
 * session=, group=, fds=, umask=} -> lipc.process */
static int lproc_exec(lua_State *L) {
  int argc = check_exec_table(L);
  exec_io io[3];
  for (int i = 0; i < 3; i++) check_stdio(L, i, &io[i]);
  const char *cwd = NULL;
  if (exec_opt(L, "cwd") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING) lipc_opterror(L, 1, "cwd", "string expected, got %s", luaL_typename(L, -1));
    size_t cl;
    cwd = lua_tolstring(L, -1, &cl);
    if (cl == 0 || memchr(cwd, '\0', cl)) lipc_opterror(L, 1, "cwd", "invalid path");
  }
  lua_pop(L, 1);  /* the string stays alive in the table */
  int clear = lipc_optbool(L, 1, "clearenv", 0);
  int session = lipc_optbool(L, 1, "session", 0);
  int group = lipc_optbool(L, 1, "group", 0);
  mode_t um = lipc_optmode(L, 1, "umask", (mode_t)010000);  /* 010000: not given */
  if (um != (mode_t)010000 && um > 0777) lipc_opterror(L, 1, "umask", "out of range (0 to 777)");
  int nx = 0;
  extra_fd *xfd = check_fds(L, &nx);
  char **envp = build_env(L, clear);
  lua_newtable(L);                          /* anchor for converted numbers */
  int anchor = lua_gettop(L);
  char **argv = lua_newuserdatauv(L, ((size_t)argc + 1) * sizeof(char *), 0);
  for (int i = 1; i <= argc; i++) {
    lua_rawgeti(L, 1, i);
    argv[i - 1] = (char *)lua_tostring(L, -1);  /* a number is converted on the stack copy */
    if (argv[i - 1] == NULL) luaL_argerror(L, 1, "argv changed while it was read");
    lua_rawseti(L, anchor, i);
  }
  argv[argc] = NULL;
  /* handles first, resources second */
  lproc *p = process_new(L);
  int pidx = lua_gettop(L);
  lipc_stream *ends[3] = {NULL, NULL, NULL};
  int eidx[3] = {0, 0, 0};
  for (int i = 0; i < 3; i++)
    if (io[i].kind == IO_PIPE) { ends[i] = lipc_pipe_new(L); eidx[i] = lua_gettop(L); }
  char prog[PATH_MAX];
  int err = resolve(argv[0], env_path(envp), prog, sizeof prog);
  if (err) return lipc_error(L, err, "exec", argv[0]);
  int dirfd = -1;
  if (cwd) {
    dirfd = open(cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);  /* enough for fchdir, as chdir needs only search */
    if (dirfd < 0) return lipc_error(L, errno, "chdir", cwd);
  }
  for (int i = 0; i < 3; i++) {
    if (io[i].kind == IO_PIPE) {
      int fds[2], rc;
      LIPC_FDCALL(L, rc, pipe2(fds, O_CLOEXEC));
      if (rc != 0) {
        err = errno;
        exec_cleanup(io, dirfd, ends, xfd, nx);
        return lipc_error(L, err, "pipe", NULL);
      }
      int mine = i == 0 ? fds[1] : fds[0];
      io[i].child_end = i == 0 ? fds[0] : fds[1];
      if (io[i].child_end < 3) {
        /* a low end could be overwritten by an earlier dup2: move it up */
        int fd = fcntl(io[i].child_end, F_DUPFD_CLOEXEC, 3);
        int e2 = errno;
        close(io[i].child_end);
        io[i].child_end = fd;
        if (fd < 0) {
          close(mine);
          exec_cleanup(io, dirfd, ends, xfd, nx);
          return lipc_error(L, e2, "dup", NULL);
        }
      }
      lipc_pipe_set(ends[i], mine, i == 0 ? LIPC_STREAM_WRITE : LIPC_STREAM_READ);
    } else if (io[i].kind == IO_FD && io[i].fd < 3 && io[i].fd != i) {
      /* a low source could be overwritten by an earlier dup2: move it up */
      int fd = fcntl(io[i].fd, F_DUPFD_CLOEXEC, 3);
      if (fd < 0) {
        err = errno;
        exec_cleanup(io, dirfd, ends, xfd, nx);
        return lipc_error(L, err, "dup", STDIO_KEYS[i]);
      }
      io[i].fd = fd;
      io[i].tmp = 1;
    }
  }
  int above = 3;
  for (int j = 0; j < nx; j++)
    if (xfd[j].dst >= above) above = xfd[j].dst + 1;
  for (int j = 0; j < nx; j++) {
    xfd[j].tmp = fcntl(xfd[j].src, F_DUPFD_CLOEXEC, above);
    if (xfd[j].tmp < 0) {
      err = errno;
      exec_cleanup(io, dirfd, ends, xfd, nx);
      char what[32];
      snprintf(what, sizeof what, "fds[%d]", xfd[j].dst);
      return lipc_error(L, err, "dup", what);
    }
  }
  exec_plan plan;
  plan.path = prog;
  plan.argv = argv;
  plan.envp = envp ? envp : environ;
  plan.dirfd = dirfd;
  plan.session = session;
  plan.group = group;
  plan.umask = um == (mode_t)010000 ? -1 : (int)um;
  plan.x = xfd;
  plan.nx = nx;
  for (int i = 0; i < 3; i++) {
    plan.kind[i] = io[i].kind;
    plan.src[i] = io[i].kind == IO_PIPE ? io[i].child_end : io[i].fd;
  }
  pid_t pid = -1;
  err = run_plan(&plan, &pid);
  if (err) {
    exec_cleanup(io, dirfd, ends, xfd, nx);
    return lipc_error(L, err, "exec", argv[0]);
  }
  close_ios(io, dirfd, xfd, nx);
  process_start(L, pidx, p, pid);
  lua_getiuservalue(L, pidx, 1);
  for (int i = 0; i < 3; i++) {
    if (ends[i]) {
      lua_pushvalue(L, eidx[i]);
      lua_setfield(L, -2, STDIO_KEYS[i]);
    }
  }
  lua_pop(L, 1);
  lua_pushvalue(L, pidx);
  return 1;
}

static const luaL_Reg process_methods[] = {
  {"wait", lprocess_wait},
  {"kill", lprocess_kill},
  {"fileno", lprocess_fileno},
  {"status", lprocess_poll},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"fork", lproc_fork},
  {"wait", lproc_wait},
  {"exit", lproc_exit},
  {"getpid", lproc_getpid},
  {"getppid", lproc_getppid},
  {"spawn", lproc_spawn},
  {"exec", lproc_exec},
  {NULL, NULL}
};

void lipc_open_proc(lua_State *L) {
  lipc_register(L, &process_class, process_methods);
  /* replace __index with one that also serves the fields */
  luaL_getmetatable(L, process_class.name);
  lua_getfield(L, -1, "__index");
  if (lua_istable(L, -1)) {
    lua_pushcclosure(L, lprocess_index, 1);
    lua_setfield(L, -2, "__index");
  } else {
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
}
