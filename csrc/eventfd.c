/*
 * eventfd.c - ipc.eventfd: a 64-bit kernel counter behind a descriptor
 * (eventfd(2)), in counter or semaphore mode.
 *
 * The descriptor is EFD_CLOEXEC and blocking, as a C program expects
 * (EFD_NONBLOCK with the nonblock option).  A call without a timeout
 * blocks in read(2)/write(2) itself - one system call, as fast as C; an
 * EINTR from Ctrl-C returns to Lua (lipc_interrupted), other EINTRs retry.
 * A call with a timeout never blocks in read/write: it reads with
 * preadv2(RWF_NOWAIT) (or with O_NONBLOCK set for the duration of the call
 * where the kernel lacks that) and waits with ppoll on the remaining time,
 * so a value taken by another process between the wake-up and the read
 * cannot hold the call past its deadline.  EAGAIN is handled everywhere,
 * whoever set O_NONBLOCK on the shared file description.
 */
#include "core.h"

#include <math.h>
#include <stdio.h>
#include <poll.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

typedef struct levent {
  lipc_handle h;
  int semaphore;   /* EFD_SEMAPHORE: take returns 1 */
  int nonblock;    /* calls without a timeout try once */
} levent;

/* __tostring identity: "fd=5, semaphore" or "fd=5, counter". */
static void levent_describe(lipc_handle *h, luaL_Buffer *b) {
  char tmp[48];
  snprintf(tmp, sizeof tmp, "fd=%d, %s", h->fd, ((levent *)h)->semaphore ? "semaphore" : "counter");
  luaL_addstring(b, tmp);
}

static const lipc_class EVENTFD = {
  .name = "lipc.eventfd", .kind = "eventfd", .size = sizeof(levent),
  .describe = levent_describe,
};

/* The open eventfd at 1 for the hot methods (lipc_check: the class stamped at creation). */
static levent *levent_fastcheck(lua_State *L) { return lipc_check(L, 1, &EVENTFD); }

/* An unsigned 64-bit amount at idx in 1..0xfffffffffffffffe: a positive
 * integer, a hex literal above math.maxinteger (a negative Lua integer
 * other than -1), or a float with an exact integer value. */
static uint64_t levent_checkamount(lua_State *L, int idx) {
  int isnum = 0;
  lua_Integer i = lua_tointegerx(L, idx, &isnum);
  if (isnum) {
    luaL_argcheck(L, i != 0 && i != -1, idx,
                  "out of range (1 to 0xfffffffffffffffe)");
    return (uint64_t)i;
  }
  if (lua_type(L, idx) != LUA_TNUMBER) luaL_typeerror(L, idx, "integer");
  double f = lua_tonumber(L, idx);
  /* floats between 2^63 and 2^64 are exact integers; 2^64 - 1 is not a float */
  if (f >= 9223372036854775808.0 && f < 18446744073709551616.0) return (uint64_t)f;
  if (floor(f) != f || isnan(f)) luaL_argerror(L, idx, "number has no integer representation");
  return (uint64_t)luaL_argerror(L, idx, "out of range (1 to 0xfffffffffffffffe)");
}

/* ipc.eventfd([initval [, {semaphore=, nonblock=}]]): a new counter. */
static int levent_new(lua_State *L) {
  static const char *const opts[] = {"semaphore", "nonblock", NULL};
  unsigned int init = (unsigned int)lipc_optrange(L, 1, 0, 0, UINT32_MAX);
  lipc_checkoptions(L, 2, opts);
  int sem = lipc_optbool(L, 2, "semaphore", 0);
  int nb = lipc_optbool(L, 2, "nonblock", 0);
  levent *e = lipc_new(L, &EVENTFD, 0);
  e->semaphore = sem;
  e->nonblock = nb;
  int fd;
  LIPC_FDCALL(L, fd, eventfd(init, EFD_CLOEXEC | (nb ? EFD_NONBLOCK : 0) | (sem ? EFD_SEMAPHORE : 0)));
  if (fd < 0) return lipc_error(L, errno, "eventfd", NULL);
  e->h.fd = fd;
  e->h.open = 1;
  return 1;
}

/* 0 while preadv2(RWF_NOWAIT) works on eventfds; 1 once it did not. */
static int no_rwf_nowait;

/* One read or write of the 8-byte value that never blocks: 8, or -1 with
 * errno (EAGAIN when it would block).  Leaves O_NONBLOCK as it found it. */
static ssize_t levent_nowait(int fd, uint64_t *v, int wr) {
  if (!wr && !no_rwf_nowait) {
    struct iovec io = { v, sizeof *v };
    ssize_t r = preadv2(fd, &io, 1, -1, RWF_NOWAIT);
    if (r >= 0 || (errno != EOPNOTSUPP && errno != EINVAL && errno != ENOSYS)) return r;
    no_rwf_nowait = 1;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -1;
  if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) return -1;
  ssize_t r = wr ? write(fd, v, sizeof *v) : read(fd, v, sizeof *v);
  int err = errno;
  if (!(fl & O_NONBLOCK)) (void)fcntl(fd, F_SETFL, fl);
  errno = err;
  return r;
}

/* One read (w->acc[0] = 0) or write (1) of the value w->acc[1]: blocks in
 * the kernel when the caller may and has no deadline; otherwise never. */
static int levent_try(lua_State *L, lipc_wait *w) {
  levent *e = w->p;
  int wr = (int)w->acc[0];
  uint64_t v = (uint64_t)w->acc[1];
  ssize_t r;
  if (w->block && w->d.forever) r = wr ? write(e->h.fd, &v, sizeof v) : read(e->h.fd, &v, sizeof v);
  else r = levent_nowait(e->h.fd, &v, wr);
  if (r == (ssize_t)sizeof v) {
    if (wr) lua_pushboolean(L, 1);
    else lua_pushinteger(L, (lua_Integer)v);
    return 1;
  }
  int err = r < 0 ? errno : EIO;
  if (err == EINTR) return LIPC_EINTR;
  if (err == EAGAIN) {
    /* writable means "1 more fits": a larger add may still not fit, and a
     * value can be taken by another process between poll and read: the
     * wait path backs off when a wait said ready and this says again */
    w->fd = e->h.fd;
    w->events = wr ? POLLOUT : POLLIN;
    return LIPC_AGAIN;
  }
  return lipc_fail(L, err, wr ? "eventfd write" : "eventfd read", NULL);
}

/* Start the wait of add (wr = 1, value n) or take (0) with the timeout at
 * tidx (a nonblocking counter without one tries once). */
static int levent_io(lua_State *L, levent *e, int tidx, int wr, uint64_t n) {
  lipc_wait w;
  int once = e->nonblock && lua_isnoneornil(L, tidx);  /* nonblocking, no timeout: try once */
  lipc_wait_init(L, &w, once ? 0 : tidx, levent_try);
  if (once) lipc_deadline_secs(L, 0, &w.d);
  w.p = e;
  w.call = wr ? "eventfd write" : "eventfd read";
  w.acc[0] = wr;
  w.acc[1] = (lua_Integer)n;
  return lipc_run_direct(L, &w, levent_try);
}

/* e:add([n=1 [, timeout]]): add n to the counter; waits while it would
 * overflow (above 0xfffffffffffffffe).  true | nil, "timeout". */
static int levent_add(lua_State *L) {
  levent *e = levent_fastcheck(L);
  uint64_t n = lua_isnoneornil(L, 2) ? 1 : levent_checkamount(L, 2);
  return levent_io(L, e, 3, 1, n);
}

/* e:take([timeout]): wait for a nonzero counter; returns its value and
 * resets it to 0 (semaphore mode: returns 1 and decrements it).  Values
 * above math.maxinteger come back as negative integers (two's
 * complement, compare with math.ult). */
static int levent_take(lua_State *L) {
  levent *e = levent_fastcheck(L);
  return levent_io(L, e, 2, 0, 0);
}

/* e:semaphore(): true when created in semaphore mode. */
static int levent_issemaphore(lua_State *L) {
  levent *e = lipc_check(L, 1, &EVENTFD);
  lua_pushboolean(L, e->semaphore);
  return 1;
}

static const luaL_Reg methods[] = {
  {"add", levent_add},
  {"take", levent_take},
  {"issemaphore", levent_issemaphore},
  {"fileno", lipc_m_fileno},
  {NULL, NULL}
};

/* Register lipc.eventfd and ipc.eventfd. */
void lipc_open_eventfd(lua_State *L) {
  lipc_register(L, &EVENTFD, methods);
  lua_pushcfunction(L, levent_new);
  lua_setfield(L, -2, "eventfd");
}
