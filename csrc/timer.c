/*
 * timer.c - ipc.timer: a timerfd on CLOCK_MONOTONIC (timerfd_create(2)).
 *
 * The descriptor is close-on-exec and nonblocking: tm:wait reads the
 * expiration count, and when there is none yet waits through lipc_run on
 * the descriptor (ppoll outside a task, the loop's epoll set inside one),
 * so a timer wait costs what any descriptor wait costs.  The descriptor
 * can be handed to ipc.poll, a poller, or another event loop.
 */
#include "core.h"

#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <sys/timerfd.h>
#include <unistd.h>

typedef struct ltimer {
  lipc_handle h;
  double after, every;   /* as set: first expiry, period (0: once) */
} ltimer;

/* __tostring identity: "fd=5, after=1, every=0.5" (every only if periodic). */
static void ltimer_describe(lipc_handle *h, luaL_Buffer *b) {
  ltimer *t = (ltimer *)h;
  char tmp[96];
  if (t->every > 0) snprintf(tmp, sizeof tmp, "fd=%d, after=%.9g, every=%.9g", h->fd, t->after, t->every);
  else snprintf(tmp, sizeof tmp, "fd=%d, after=%.9g", h->fd, t->after);
  luaL_addstring(b, tmp);
}

static const lipc_class TIMER = {
  .name = "lipc.timer", .kind = "timer", .size = sizeof(ltimer),
  .describe = ltimer_describe,
};

/* Seconds at idx: a number >= 0 (and below about 31 years), or def when
 * the argument is absent (def < 0: required). */
static double ltimer_checksecs(lua_State *L, int idx, double def) {
  if (def >= 0 && lua_isnoneornil(L, idx)) return def;
  if (lua_type(L, idx) != LUA_TNUMBER) luaL_typeerror(L, idx, "number of seconds");
  double s = lua_tonumber(L, idx);
  luaL_argcheck(L, s >= 0 && s < 1e9, idx, "seconds must be >= 0 and < 1e9");
  return s;
}

static struct timespec secs_ts(double s) {
  double whole = floor(s);
  struct timespec ts = { (time_t)whole, (long)((s - whole) * 1e9) };
  if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
  return ts;
}

/* Arm the timer: first expiry after `after` seconds (0: at once), then
 * every `every` seconds (0: once).  0 or an errno value. */
static int ltimer_arm(ltimer *t, double after, double every) {
  struct itimerspec its;
  its.it_value = secs_ts(after);
  its.it_interval = secs_ts(every);
  /* a zero it_value disarms: "at once" is the smallest delay instead */
  if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
  if (timerfd_settime(t->h.fd, 0, &its, NULL) != 0) return errno;
  t->after = after;
  t->every = every;
  return 0;
}

/* ipc.timer(after [, every]): a timer that expires after `after` seconds,
 * then every `every` seconds when given (> 0). */
static int ltimer_new(lua_State *L) {
  double after = ltimer_checksecs(L, 1, -1);
  double every = ltimer_checksecs(L, 2, 0);
  ltimer *t = lipc_new(L, &TIMER, 0);
  int fd;
  LIPC_FDCALL(L, fd, timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (fd < 0) return lipc_error(L, errno, "timerfd_create", NULL);
  t->h.fd = fd;
  int err = ltimer_arm(t, after, every);
  if (err != 0) {
    close(fd);
    t->h.fd = -1;
    return lipc_error(L, err, "timerfd_settime", NULL);
  }
  t->h.open = 1;
  return 1;
}

/* One read of the expiration count. */
static int ltimer_try(lua_State *L, lipc_wait *w) {
  ltimer *t = w->p;
  uint64_t n;
  ssize_t r = read(t->h.fd, &n, sizeof n);
  if (r == (ssize_t)sizeof n) {
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
  }
  int err = r < 0 ? errno : EIO;
  if (err == EINTR) return LIPC_EINTR;
  if (err == EAGAIN) {
    w->fd = t->h.fd;
    w->events = POLLIN;
    return LIPC_AGAIN;
  }
  return lipc_fail(L, err, "timer read", NULL);
}

/* tm:wait([timeout]): the number of expirations since the last wait,
 * waiting for the next one when there is none. */
static int ltimer_wait(lua_State *L) {
  ltimer *t = lipc_check(L, 1, &TIMER);
  lipc_wait w;
  lipc_wait_init(L, &w, 2, ltimer_try);
  w.p = t;
  w.call = "timer read";
  return lipc_run(L, &w);
}

/* tm:reset(after [, every]): arm again (pending expirations are dropped). */
static int ltimer_reset(lua_State *L) {
  ltimer *t = lipc_check(L, 1, &TIMER);
  double after = ltimer_checksecs(L, 2, -1);
  double every = ltimer_checksecs(L, 3, 0);
  uint64_t n;
  while (read(t->h.fd, &n, sizeof n) == (ssize_t)sizeof n) {}
  int err = ltimer_arm(t, after, every);
  if (err != 0) return lipc_error(L, err, "timerfd_settime", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg methods[] = {
  {"wait", ltimer_wait},
  {"reset", ltimer_reset},
  {"fileno", lipc_m_fileno},
  {NULL, NULL}
};

/* Register lipc.timer and ipc.timer. */
void lipc_open_timer(lua_State *L) {
  lipc_register(L, &TIMER, methods);
  lua_pushcfunction(L, ltimer_new);
  lua_setfield(L, -2, "timer");
}
