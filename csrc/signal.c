/*
 * signal.c - ipc.signal: watching signals through signalfd(2), sending
 * them (kill, sigqueue), explicit dispositions (ignore, default), names
 * and numbers.
 *
 * A watch blocks its signals (pthread_sigmask) so they stay pending until
 * read from the signalfd.  Several watches may share a signal: a per-signal
 * count of live watches in this process decides when the last one closes,
 * and only then is the signal unblocked - and only if it was not blocked
 * before the first watch blocked it.  Nothing else changes the process's
 * mask or dispositions (ignore/default are explicit user requests).
 */
#include "core.h"

#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define NSIG_MAX 65   /* signals 1..64 */

typedef struct lsigwatch {
  lipc_handle h;
  sigset_t set;                /* the signals this watch reads */
  int nonblock;                /* next without a timeout tries once */
  unsigned epoch[NSIG_MAX];    /* watch_epoch[s] when this watch counted s */
} lsigwatch;

/* Live watches per signal in this process, and whether the first of them
 * found the signal already blocked.  Inherited by fork with the mask.  A
 * child started by ipc.spawn starts with an empty mask: when a signal the
 * counts say is blocked turns out not to be, the counts of that signal
 * start over in a new epoch, and watches of older epochs no longer count. */
static int watch_count[NSIG_MAX];
static unsigned char blocked_before[NSIG_MAX];
static unsigned watch_epoch[NSIG_MAX];

/* Unblock the signals of set no live watch needs any more (those that
 * were not blocked before the watches), discarding the instances of them
 * that are pending: they were sent to be read by the watch.  Never raises. */
static void sigwatch_unwatch(const lsigwatch *w) {
  sigset_t unblock;
  sigemptyset(&unblock);
  int any = 0;
  for (int s = 1; s < NSIG_MAX; s++) {
    if (!sigismember(&w->set, s) || w->epoch[s] != watch_epoch[s]) continue;
    if (watch_count[s] > 0 && --watch_count[s] == 0 && !blocked_before[s]) {
      sigaddset(&unblock, s);
      any = 1;
    }
  }
  if (!any) return;
  struct timespec zero = {0, 0};
  for (;;) {  /* drain the pending ones (real-time signals queue several) */
    int s = sigtimedwait(&unblock, NULL, &zero);
    if (s < 0 && errno == EINTR) continue;
    if (s < 0) break;
  }
  pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
}

/* Release: close the signalfd, then give back the mask. */
static int sigwatch_release(lipc_handle *h, int remove_name) {
  (void)remove_name;
  lsigwatch *w = (lsigwatch *)h;
  int err = 0;
  if (h->fd >= 0 && close(h->fd) != 0) err = errno;
  h->fd = -1;
  sigwatch_unwatch(w);
  return err;
}

/* __tostring identity: "fd=5, USR1 TERM". */
static void sigwatch_describe(lipc_handle *h, luaL_Buffer *b) {
  lsigwatch *w = (lsigwatch *)h;
  char tmp[32];
  snprintf(tmp, sizeof tmp, "fd=%d,", h->fd);
  luaL_addstring(b, tmp);
  for (int s = 1; s < NSIG_MAX; s++) {
    if (!sigismember(&w->set, s)) continue;
    luaL_addchar(b, ' ');
    luaL_addstring(b, lipc_signame(s, tmp, sizeof tmp));
  }
}

static const lipc_class SIGWATCH = {
  .name = "lipc.sigwatch", .kind = "sigwatch", .size = sizeof(lsigwatch),
  .release = sigwatch_release, .describe = sigwatch_describe,
};

/* Why signal s cannot be blocked, caught or ignored (0, KILL/STOP, the C
 * library's reserved real-time ones), or NULL when it can.  what names the
 * use ("watched"); the reason may be pushed on the stack. */
static const char *sig_unusable(lua_State *L, int s, const char *what) {
  if (s == 0) return "signal 0 is not a signal";
  if (s == SIGKILL || s == SIGSTOP)
    return lua_pushfstring(L, "%s cannot be %s", s == SIGKILL ? "KILL" : "STOP", what);
  if (s >= 32 && s < SIGRTMIN) return lua_pushfstring(L, "signal %d is reserved by the C library", s);
  return NULL;
}

/* A signal at idx that a process may block, catch or ignore; raises. */
static int sig_checkusable(lua_State *L, int idx, const char *what) {
  int s = lipc_checksignal(L, idx);
  const char *why = sig_unusable(L, s, what);
  if (why) luaL_argerror(L, idx, why);
  return s;
}

/* The signal number of item i (on top) of the list at idx; raises naming
 * the list argument and the item. */
static int sig_checkitem(lua_State *L, int idx, lua_Integer i) {
  int s = lipc_tosignal(L, -1);
  const char *why = s < 0 ? lua_tostring(L, -1) : sig_unusable(L, s, "watched");
  if (why) luaL_argerror(L, idx, lua_pushfstring(L, "item %I: %s", i, why));
  return s;
}

/* Most items a watch list may have: a signal may be repeated, but a list
 * longer than this is a mistake (or a hostile __len), not a wish. */
#define WATCH_MAXITEMS 1024

/* ipc.signal.watch{ "USR1", "TERM", ... } [, {nonblock=}]: block those
 * signals and return a signalfd watch on them. */
static int lsig_watch(lua_State *L) {
  static const char *const opts[] = {"nonblock", NULL};
  luaL_checktype(L, 1, LUA_TTABLE);
  lipc_checkoptions(L, 2, opts);
  int nb = lipc_optbool(L, 2, "nonblock", 0);
  /* raw length and raw reads: a __len or __index cannot make the loop
   * below run forever or change the list while it is read */
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  luaL_argcheck(L, n > 0, 1, "at least one signal expected");
  luaL_argcheck(L, n <= WATCH_MAXITEMS, 1, "too many items (at most 1024)");
  /* check everything first; build signo -> spelling in a table */
  sigset_t set;
  sigemptyset(&set);
  lua_createtable(L, 0, (int)(n < 64 ? n : 64));
  int names = lua_gettop(L);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    int s = sig_checkitem(L, 1, i);
    if (!sigismember(&set, s)) {
      sigaddset(&set, s);
      char buf[32];
      if (lua_type(L, -1) == LUA_TSTRING) lua_pushvalue(L, -1);
      else lua_pushstring(L, lipc_signame(s, buf, sizeof buf));
      lua_rawseti(L, names, s);
    }
    lua_pop(L, 1);
  }
  lsigwatch *w = lipc_new(L, &SIGWATCH, 1);
  lua_pushvalue(L, names);
  lua_setiuservalue(L, -2, 1);
  w->nonblock = nb;
  /* the signalfd first (so a failure changes no mask), then the mask */
  int fd;
  LIPC_FDCALL(L, fd, signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (fd < 0) return lipc_error(L, errno, "signalfd", NULL);
  w->h.fd = fd;
  sigset_t old;
  pthread_sigmask(SIG_BLOCK, &set, &old);
  for (int s = 1; s < NSIG_MAX; s++) {
    if (!sigismember(&set, s)) continue;
    if (watch_count[s] > 0 && !sigismember(&old, s)) {  /* mask reset behind us */
      watch_count[s] = 0;
      watch_epoch[s]++;
    }
    if (watch_count[s]++ == 0) blocked_before[s] = (unsigned char)sigismember(&old, s);
    w->epoch[s] = watch_epoch[s];
  }
  w->set = set;
  w->h.open = 1;
  return 1;
}

/* Set t[k] = v (integer) in the table on top. */
static void setint(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

/* One try of next: a nonblocking read of the signalfd (it is always
 * SFD_NONBLOCK); readable yet EAGAIN (the signal went to another thread
 * or reader) is the wait path's to back off from. */
static int sig_trynext(lua_State *L, lipc_wait *lw) {
  lsigwatch *w = lw->p;
  if (!w->h.open) return lipc_closed_error(L, &SIGWATCH);  /* closed by another task */
  struct signalfd_siginfo si;
  ssize_t r = read(w->h.fd, &si, sizeof si);
  if (r < 0) {
    int err = errno;
    if (err == EINTR) return LIPC_EINTR;
    if (err != EAGAIN) return lipc_error(L, err, "signalfd read", NULL);
    lw->fd = w->h.fd;
    lw->events = POLLIN;
    return LIPC_AGAIN;
  }
  if (r != (ssize_t)sizeof si) return lipc_error(L, EIO, "signalfd read", NULL);
  int s = (int)si.ssi_signo;
  lua_getiuservalue(L, 1, 1);
  if (lua_rawgeti(L, -1, s) != LUA_TSTRING) {
    char buf[32];
    lua_pop(L, 1);
    lua_pushstring(L, lipc_signame(s, buf, sizeof buf));
  }
  lua_createtable(L, 0, 8);
  setint(L, "signo", s);
  setint(L, "pid", (lua_Integer)si.ssi_pid);
  setint(L, "uid", (lua_Integer)si.ssi_uid);
  setint(L, "code", (lua_Integer)si.ssi_code);
  setint(L, "value", (lua_Integer)si.ssi_int);
  if (s == SIGCHLD) setint(L, "status", (lua_Integer)si.ssi_status);
  if (si.ssi_errno != 0) setint(L, "errno", (lua_Integer)si.ssi_errno);
  return 2;
}

/* w:next([timeout]): the next watched signal: name (as watch spelled
 * it), info { signo=, pid=, uid=, value=, code=, ... } | nil, "timeout". */
static int lsig_next(lua_State *L) {
  lsigwatch *w = lipc_check(L, 1, &SIGWATCH);
  lipc_wait lw;
  int once = w->nonblock && lua_isnoneornil(L, 2);  /* nonblocking, no timeout: try once */
  lipc_wait_init(L, &lw, once ? 0 : 2, sig_trynext);
  if (once) lipc_deadline_secs(L, 0, &lw.d);
  lw.p = w;
  lw.call = "signalfd read";
  return lipc_run(L, &lw);
}

/* w:signals(): the list of watched signal names, as watch spelled them. */
static int lsig_signals(lua_State *L) {
  lsigwatch *w = lipc_check(L, 1, &SIGWATCH);
  lua_getiuservalue(L, 1, 1);
  lua_newtable(L);
  int n = 0;
  for (int s = 1; s < NSIG_MAX; s++) {
    if (!sigismember(&w->set, s)) continue;
    lua_rawgeti(L, -2, s);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

/* A pid argument: any int except INT_MIN (kill(2) takes 0 and negatives). */
static pid_t sig_checkpid(lua_State *L, int idx, lua_Integer min) {
  return (pid_t)lipc_checkrange(L, idx, min, INT32_MAX);
}

/* ipc.signal.kill(pid [, sig="TERM"]): kill(2); pid 0 and negative pids
 * address process groups as in kill(2); sig 0 only checks. */
static int lsig_kill(lua_State *L) {
  pid_t pid = sig_checkpid(L, 1, -INT32_MAX);
  int s = lua_isnoneornil(L, 2) ? SIGTERM : lipc_checksignal(L, 2);
  char what[32];
  snprintf(what, sizeof what, "%ld", (long)pid);
  if (kill(pid, s) != 0) return lipc_error(L, errno, "kill", what);
  lua_pushboolean(L, 1);
  return 1;
}

/* ipc.signal.queue(pid, sig [, value=0]): sigqueue(3) with an int payload. */
static int lsig_queue(lua_State *L) {
  pid_t pid = sig_checkpid(L, 1, 1);
  int s = lipc_checksignal(L, 2);
  int v = (int)lipc_optrange(L, 3, 0, INT_MIN, INT_MAX);
  union sigval val;
  memset(&val, 0, sizeof val);
  val.sival_int = v;
  char what[32];
  snprintf(what, sizeof what, "%ld", (long)pid);
  if (sigqueue(pid, s, val) != 0) return lipc_error(L, errno, "sigqueue", what);
  lua_pushboolean(L, 1);
  return 1;
}

/* Set the disposition of the signal at 1 to h. */
static int sig_setdisposition(lua_State *L, void (*h)(int), const char *what) {
  int s = sig_checkusable(L, 1, what);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = h;
  sigemptyset(&sa.sa_mask);
  if (sigaction(s, &sa, NULL) != 0) return lipc_error(L, errno, "sigaction", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* ipc.signal.ignore(sig): SIG_IGN (inherited across exec, as always). */
static int lsig_ignore(lua_State *L) {
  return sig_setdisposition(L, SIG_IGN, "ignored");
}

/* ipc.signal.default(sig): SIG_DFL. */
static int lsig_default(lua_State *L) {
  return sig_setdisposition(L, SIG_DFL, "changed");
}

/* ipc.signal.disposition(sig): "default", "ignore" or "handler". */
static int lsig_disposition(lua_State *L) {
  int s = lipc_checksignal(L, 1);
  luaL_argcheck(L, s != 0, 1, "signal 0 is not a signal");
  struct sigaction sa;
  if (sigaction(s, NULL, &sa) != 0) return lipc_error(L, errno, "sigaction", NULL);
  if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL) lua_pushliteral(L, "default");
  else if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_IGN) lua_pushliteral(L, "ignore");
  else lua_pushliteral(L, "handler");
  return 1;
}

/* ipc.signal.name(signo): "TERM", "RTMIN+2". */
static int lsig_name(lua_State *L) {
  int s = (int)lipc_checkrange(L, 1, 1, SIGRTMAX);
  char buf[32];
  lua_pushstring(L, lipc_signame(s, buf, sizeof buf));
  return 1;
}

/* ipc.signal.number(sig): the number of a name ("TERM" -> 15). */
static int lsig_number(lua_State *L) {
  lua_pushinteger(L, lipc_checksignal(L, 1));
  return 1;
}

/* ipc.signal.blocked(): the names of the signals blocked in this thread. */
static int lsig_blocked(lua_State *L) {
  sigset_t cur;
  pthread_sigmask(SIG_BLOCK, NULL, &cur);
  lua_newtable(L);
  int n = 0;
  char buf[32];
  for (int s = 1; s < NSIG_MAX; s++) {
    if (s >= 32 && s < SIGRTMIN) continue;
    if (!sigismember(&cur, s)) continue;
    lua_pushstring(L, lipc_signame(s, buf, sizeof buf));
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

static const luaL_Reg methods[] = {
  {"next", lsig_next},
  {"signals", lsig_signals},
  {"fileno", lipc_m_fileno},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"watch", lsig_watch},
  {"kill", lsig_kill},
  {"queue", lsig_queue},
  {"ignore", lsig_ignore},
  {"default", lsig_default},
  {"disposition", lsig_disposition},
  {"name", lsig_name},
  {"number", lsig_number},
  {"blocked", lsig_blocked},
  {NULL, NULL}
};

/* Register lipc.sigwatch and ipc.signal.*. */
void lipc_open_signal(lua_State *L) {
  lipc_register(L, &SIGWATCH, methods);
  lipc_subtable(L, -1, "signal");
  luaL_setfuncs(L, funcs, 0);
  lipc_setsignals(L);
  lua_pop(L, 1);
}
