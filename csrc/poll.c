/*
 * poll.c - waiting on many descriptors: ipc.poll (poll(2) on a list) and
 * ipc.poller (an epoll(7) set of registered objects).
 *
 * Any open lipc object with a descriptor, or a plain integer descriptor,
 * can be waited on.  A poller keeps each registered object in a table in
 * its user value (keyed by descriptor), so the object stays alive and
 * wait returns the very same object.  Each registration carries a serial
 * number in the epoll data next to the descriptor (and in a C array
 * indexed by descriptor): an event from an older registration of a
 * reused descriptor number is never attributed to the newer object.
 */
#include "core.h"
#include "ready.h"
#include "stream.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* ---- ipc.poll ------------------------------------------------------------ */

/* Objects without a descriptor are probed (csrc/ready.h); their list items
 * have fd -1 in the pollfd array, which ppoll skips. */
enum { PROBE_NONE, PROBE_RING, PROBE_SEM, PROBE_MUTEX, PROBE_MSG };

/* The probe of a descriptor-less class h, PROBE_NONE when it has none. */
static int probe_of(const lipc_handle *h) {
  const char *k = h->cls->kind;
  if (strcmp(k, "ring") == 0) return PROBE_RING;
  if (strcmp(k, "sem") == 0) return PROBE_SEM;
  if (strcmp(k, "mutex") == 0) return PROBE_MUTEX;
  if (strcmp(k, "msg") == 0) return PROBE_MSG;
  return PROBE_NONE;
}

/* 1 when the probed object h is ready now. */
static int probe_ready(int probe, lipc_handle *h) {
  switch (probe) {
    case PROBE_RING: return lipc_ring_ready(h);
    case PROBE_SEM: return lipc_sem_ready(h);
    case PROBE_MUTEX: return lipc_mutex_ready(h);
    case PROBE_MSG: return lipc_msg_ready(h);
    default: return 0;
  }
}

/* 1 when h is a byte stream with bytes already read ahead (lines): it is
 * readable even if its descriptor is not. */
static int has_buffered(const lipc_handle *h) {
  return h != NULL && (h->cls->flags & LIPC_CLASS_STREAM) && ((const lipc_stream *)h)->len > 0;
}

/* The descriptor of item i (on top) of the list at idx: an open lipc object
 * with a descriptor or an integer >= 0, or -1 for an object that is
 * probed (*probe set); raises naming the item.  *hp gets the handle (NULL
 * for an integer). */
static int poll_checkitem(lua_State *L, int idx, lua_Integer i, lipc_handle **hp, int *probe) {
  *hp = NULL;
  *probe = PROBE_NONE;
  if (lua_type(L, -1) == LUA_TNUMBER) {
    int isnum = 0;
    lua_Integer fd = lua_tointegerx(L, -1, &isnum);
    if (!isnum || fd < 0 || fd > INT_MAX)
      luaL_argerror(L, idx, lua_pushfstring(L, "item %I: descriptor out of range", i));
    return (int)fd;
  }
  lipc_handle *h = lipc_toany(L, -1);
  if (h == NULL)
    luaL_argerror(L, idx, lua_pushfstring(L, "item %I: lipc object or descriptor expected, got %s", i,
                                          luaL_typename(L, -1)));
  if (!h->open) luaL_argerror(L, idx, lua_pushfstring(L, "item %I: attempt to use a closed %s", i, h->cls->name));
  *hp = h;
  if (h->fd >= 0) return h->fd;
  *probe = probe_of(h);
  if (*probe == PROBE_NONE)
    luaL_argerror(L, idx, lua_pushfstring(L, "item %I: %s cannot be polled (no descriptor, no readiness)", i,
                                          h->cls->name));
  return -1;
}

/* The scratch of an ipc.poll call (a userdata at 3, freed by the GC
 * whatever happens): an epoll set holding the descriptors of the list,
 * made only when a task must wait for them (its first int: a descriptor
 * slot, lipc_fdslot_arm), then the pollfd array and the probe of each
 * item (PROBE_NONE for a descriptor). */
typedef struct pollset {
  int epfd;                 /* -1 until made */
  int noepoll;              /* making it failed: the wait path backs off */
  int nprobe;               /* items that are probed */
  unsigned char *probe;     /* after fds[n] */
  struct pollfd fds[];
} pollset;

/* The slice of a blocked ipc.poll with probed items: their wake-up
 * latency (descriptors wake it at once). */
#define POLL_SLICE_NS 1000000L

/* Probe every probed item of the list at 1 (n items), marking the ready
 * ones POLLIN in revents (the others 0).  1 when any is ready. */
static int poll_probe(lua_State *L, pollset *ps, lua_Integer n) {
  int any = 0;
  for (lua_Integer i = 0; i < n; i++) {
    if (ps->probe[i] == PROBE_NONE) continue;
    lua_geti(L, 1, i + 1);
    lipc_handle *h = lipc_toany(L, -1);
    /* closed meanwhile (by another task): ready, the next call says so */
    int yes = h == NULL || !h->open || probe_ready(ps->probe[i], h);
    lua_pop(L, 1);
    ps->fds[i].revents = yes ? POLLIN : 0;
    any |= yes;
  }
  return any;
}

/* The result of ipc.poll: the ready items of the list at 1, in list order
 * (those with buffered bytes too when the list has any); an item whose
 * descriptor is not open is an error. */
static int poll_results(lua_State *L, lipc_wait *w, const pollset *ps) {
  lua_Integer n = w->acc[0];
  int buffered = (int)w->acc[1];
  for (lua_Integer i = 0; i < n; i++)
    if (ps->fds[i].revents & POLLNVAL) {
      char what[32];
      snprintf(what, sizeof what, "item %lld", (long long)(i + 1));
      return lipc_error(L, EBADF, "poll", what);
    }
  lua_newtable(L);
  int k = 0;
  for (lua_Integer i = 0; i < n; i++) {
    int yes = (ps->fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
    if (!yes && buffered) {
      lua_geti(L, 1, i + 1);
      yes = has_buffered(lipc_toany(L, -1));
      lua_pop(L, 1);
    }
    if (!yes) continue;
    lua_geti(L, 1, i + 1);
    lua_rawseti(L, -2, ++k);
  }
  return 1;
}

/* Put every descriptor of ps into a new epoll set (the slot at 3), so that
 * a task waits for all of them on one descriptor.  0, or -1 when it could
 * not be made (then the wait path backs off and polls again). */
static int poll_epoll(lua_State *L, pollset *ps, lua_Integer n) {
  LIPC_FDCALL(L, ps->epfd, epoll_create1(EPOLL_CLOEXEC));
  if (ps->epfd < 0) return -1;
  lipc_fdslot_arm(L, 3);
  for (lua_Integer i = 0; i < n; i++) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;   /* EPOLLHUP and EPOLLERR come anyway */
    ev.data.u64 = (uint64_t)i;
    /* an item listed twice is EEXIST: fine */
    if (epoll_ctl(ps->epfd, EPOLL_CTL_ADD, ps->fds[i].fd, &ev) != 0 && errno != EEXIST) {
      lipc_fdslot_close(&ps->epfd);
      return -1;
    }
  }
  return 0;
}

/* One try of ipc.poll: probe the probed items, then ppoll the descriptors
 * for the remaining time when the caller may block (at most one slice
 * when the list has probed items, which are probed again after it), else
 * at once.  Not ready: a blocked caller waits again at once (backoff step
 * 0); a task waits for the epoll set of the list (or, for an empty list,
 * for the deadline), or with probed items is resumed within 1 ms
 * (csrc/task.c's backoff). */
static int poll_try(lua_State *L, lipc_wait *w) {
  pollset *ps = w->p;
  lua_Integer n = w->acc[0];
  int buffered = (int)w->acc[1];  /* report the buffered ones now */
  int probed = ps->nprobe > 0 && poll_probe(L, ps, n);
  struct timespec ts = {0, 0}, *tp = &ts;
  if (w->block && !buffered && !probed) {
    if (lipc_deadline_left(&w->d, &ts) < 0) tp = NULL;
    if (ps->nprobe > 0 && (tp == NULL || ts.tv_sec > 0 || ts.tv_nsec > POLL_SLICE_NS)) {
      ts.tv_sec = 0;
      ts.tv_nsec = POLL_SLICE_NS;
      tp = &ts;
    }
  }
  int r = ppoll(ps->fds, (nfds_t)n, tp, NULL);
  if (r < 0) {
    int err = errno;
    if (err == EINTR) return LIPC_EINTR;
    return lipc_error(L, err, "poll", NULL);
  }
  /* the probed items: again, after the ppoll (which cleared their revents) */
  if (ps->nprobe > 0) probed = poll_probe(L, ps, n);
  if (r > 0 || probed || buffered || lipc_deadline_expired(&w->d)) return poll_results(L, w, ps);
  if (w->block) {
    /* without probed items, r == 0 after a wait of the whole remaining
     * time: the deadline passed */
    if (ps->nprobe == 0) return poll_results(L, w, ps);
    w->tries = 0;  /* a slice passed: wait_blocking's backoff is its shortest (50 us) */
    return LIPC_AGAIN;
  }
  if (n == 0) w->sleep = 1;
  else if (ps->nprobe > 0) w->fd = -1;   /* the loop's backoff: resumed within 1 ms */
  else if (ps->epfd >= 0 || (!ps->noepoll && poll_epoll(L, ps, n) == 0)) {
    w->fd = ps->epfd;
    w->events = POLLIN;
  } else {
    ps->noepoll = 1;
  }
  return LIPC_AGAIN;
}

/* The end of ipc.poll when the deadline passed while waiting: {} (or the
 * error, EINTR after Ctrl-C). */
static int poll_stop(lua_State *L, lipc_wait *w, int err) {
  (void)w;
  if (err != ETIMEDOUT && err != 0) return lipc_error(L, err, "poll", NULL);  /* 0: a sleep's end */
  lua_newtable(L);
  return 1;
}

/* ipc.poll(list [, timeout]): the items of list that are readable (data,
 * end of stream, error, a pending signal, an exited process...) or, for
 * objects without a descriptor, ready (csrc/ready.h), in list order; {}
 * on timeout. */
static int lpoll_poll(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lipc_wait w;
  lipc_wait_init(L, &w, 2, poll_try);
  lua_Integer n = luaL_len(L, 1);
  luaL_argcheck(L, n <= 1000000, 1, "too many items");
  lua_settop(L, 2);
  size_t m = (size_t)(n > 0 ? n : 1);
  pollset *ps = lua_newuserdatauv(L, sizeof *ps + m * sizeof ps->fds[0] + m, 0);
  ps->epfd = -1;
  ps->noepoll = 0;
  ps->nprobe = 0;
  ps->probe = (unsigned char *)&ps->fds[m];
  int ready = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, 1, i);
    lipc_handle *h;
    int probe;
    ps->fds[i - 1].fd = poll_checkitem(L, 1, i, &h, &probe);
    ps->fds[i - 1].events = POLLIN;
    ps->fds[i - 1].revents = 0;
    ps->probe[i - 1] = (unsigned char)probe;
    if (probe != PROBE_NONE) ps->nprobe++;
    if (has_buffered(h)) ready = 1;
    lua_pop(L, 1);
  }
  w.p = ps;
  w.call = "poll";
  w.stop = poll_stop;
  w.acc[0] = n;
  w.acc[1] = ready;
  return lipc_run(L, &w);
}

/* ---- ipc.poller ------------------------------------------------------------ */

/* The user value of a poller: a table fd -> registered object (or integer). */
enum { UV_OBJ = 1 };

typedef struct lpoller {
  lipc_handle h;
  struct epoll_event *ev;   /* the last batch (malloc'd) */
  int cap;                  /* capacity of ev */
  int n, pos;               /* events in the batch, next to hand out */
  uint64_t *serial;         /* fd -> events << 32 | serial of its registration,
                             * 0 = none (malloc'd) */
  int nserial;              /* entries in serial */
  uint32_t last;            /* last serial handed out */
} lpoller;

/* Release: close the epoll descriptor, free the arrays. */
static int poller_release(lipc_handle *h, int remove_name) {
  (void)remove_name;
  lpoller *p = (lpoller *)h;
  int err = 0;
  if (h->fd >= 0 && close(h->fd) != 0) err = errno;
  h->fd = -1;
  free(p->ev);
  p->ev = NULL;
  p->cap = p->n = p->pos = 0;
  free(p->serial);
  p->serial = NULL;
  p->nserial = 0;
  return err;
}

static const lipc_class POLLER = {
  .name = "lipc.poller", .kind = "poller", .size = sizeof(lpoller),
  .release = poller_release,
};

/* ipc.poller(): a new, empty epoll set. */
static int lpoll_poller(lua_State *L) {
  lpoller *p = lipc_new(L, &POLLER, 1);
  lua_newtable(L);
  lua_setiuservalue(L, -2, UV_OBJ);
  int fd;
  LIPC_FDCALL(L, fd, epoll_create1(EPOLL_CLOEXEC));
  if (fd < 0) return lipc_error(L, errno, "epoll_create1", NULL);
  p->h.fd = fd;
  p->h.open = 1;
  return 1;
}

/* The epoll events of the event string at idx ("r", "w", "rw"; default "r"). */
static uint32_t poller_checkevents(lua_State *L, int idx) {
  static const char *const names[] = {"r", "w", "rw", "wr", NULL};
  static const uint32_t values[] = {EPOLLIN, EPOLLOUT, EPOLLIN | EPOLLOUT, EPOLLIN | EPOLLOUT};
  return values[luaL_checkoption(L, idx, "r", names)];
}

/* The descriptor of the object at idx (open lipc object or integer). */
static int poller_checkobj(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TNUMBER) return (int)lipc_checkrange(L, idx, 0, INT_MAX);
  return lipc_checkany(L, idx)->fd;
}

/* 1 when the registered value at idx is a closed lipc object.  Only
 * integers and lipc handles (checked by add) are ever registered. */
static int is_stale(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TUSERDATA) return 0;
  const lipc_handle *h = lua_touserdata(L, idx);
  return !h->open;
}

/* The poller at 1, open or not (lipc_check: the class stamped at creation). */
static lpoller *poller_fastclass(lua_State *L) { return lipc_checkclass(L, 1, &POLLER); }

/* The serial of fd's registration, 0 when none. */
static uint32_t serial_of(const lpoller *p, int fd) {
  return fd < p->nserial ? (uint32_t)p->serial[fd] : 0;
}

/* Forget the registration of fd (objects table at uvo). */
static void poller_forget(lua_State *L, lpoller *p, int uvo, int fd) {
  lua_pushnil(L);
  lua_rawseti(L, uvo, fd);
  if (fd < p->nserial) p->serial[fd] = 0;
}

/* p:add(obj [, "r"|"w"|"rw"]): register obj; true | nil, msg, errno. */
static int lpoll_add(lua_State *L) {
  lpoller *p = lipc_check(L, 1, &POLLER);
  int fd = poller_checkobj(L, 2);
  uint32_t events = poller_checkevents(L, 3);
  lua_settop(L, 3);
  lua_getiuservalue(L, 1, UV_OBJ);
  /* a closed object still in the table under this number is forgotten:
   * the kernel dropped its registration when the descriptor was closed */
  if (lua_rawgeti(L, 4, fd) != LUA_TNIL && is_stale(L, -1)) poller_forget(L, p, 4, fd);
  lua_pop(L, 1);
  char what[32];
  snprintf(what, sizeof what, "fd %d", fd);
  /* an integer that is no open descriptor must not size the serial array */
  if (fd >= p->nserial && fcntl(fd, F_GETFD) < 0) return lipc_error(L, errno, "epoll_ctl ADD", what);
  if (fd >= p->nserial) {  /* room for fd's serial first: nothing to undo later */
    size_t want = (size_t)fd + 1 < 64 ? 64 : (size_t)fd + 1;
    if ((size_t)p->nserial * 2 > want) want = (size_t)p->nserial * 2;
    if (want > (size_t)INT_MAX) want = (size_t)INT_MAX;
    uint64_t *ns = realloc(p->serial, want * sizeof *ns);
    if (ns == NULL) return luaL_error(L, "not enough memory");
    memset(ns + p->nserial, 0, (want - (size_t)p->nserial) * sizeof *ns);
    p->serial = ns;
    p->nserial = (int)want;
  }
  uint32_t serial = ++p->last;
  if (serial == 0) serial = ++p->last;
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = events;
  ev.data.u64 = ((uint64_t)serial << 32) | (uint32_t)fd;
  if (epoll_ctl(p->h.fd, EPOLL_CTL_ADD, fd, &ev) != 0) return lipc_error(L, errno, "epoll_ctl ADD", what);
  lua_pushvalue(L, 2);
  lua_rawseti(L, 4, fd);
  p->serial[fd] = (uint64_t)events << 32 | serial;
  lua_pushboolean(L, 1);
  return 1;
}

/* p:modify(obj, "r"|"w"|"rw"): change what a registered obj waits for. */
static int lpoll_modify(lua_State *L) {
  lpoller *p = lipc_check(L, 1, &POLLER);
  int fd = poller_checkobj(L, 2);
  luaL_checkany(L, 3);
  uint32_t events = poller_checkevents(L, 3);
  uint32_t serial = serial_of(p, fd);
  char what[32];
  snprintf(what, sizeof what, "fd %d", fd);
  if (serial == 0) return lipc_error(L, ENOENT, "epoll_ctl MOD", what);
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = events;
  ev.data.u64 = ((uint64_t)serial << 32) | (uint32_t)fd;
  if (epoll_ctl(p->h.fd, EPOLL_CTL_MOD, fd, &ev) != 0) return lipc_error(L, errno, "epoll_ctl MOD", what);
  p->serial[fd] = (uint64_t)events << 32 | serial;
  lua_pushboolean(L, 1);
  return 1;
}

/* p:remove(obj): unregister obj.  A closed object is only dropped from the
 * poller's table (closing its descriptor already unregistered it): true.
 * true | nil, msg, ENOENT when an open obj was not registered. */
static int lpoll_remove(lua_State *L) {
  lpoller *p = lipc_check(L, 1, &POLLER);
  lua_settop(L, 2);
  lua_getiuservalue(L, 1, UV_OBJ);
  lipc_handle *h = lua_type(L, 2) == LUA_TNUMBER ? NULL : lipc_toany(L, 2);
  if (h != NULL && !h->open) {
    /* its number is gone: find it by identity */
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      if (lua_rawequal(L, -1, 2)) {
        int fd = (int)lua_tointeger(L, -2);
        lua_pop(L, 2);
        poller_forget(L, p, 3, fd);
        break;
      }
      lua_pop(L, 1);
    }
    lua_pushboolean(L, 1);  /* nothing left to remove */
    return 1;
  }
  int fd = poller_checkobj(L, 2);
  char what[32];
  snprintf(what, sizeof what, "fd %d", fd);
  int known = serial_of(p, fd) != 0;
  struct epoll_event ev;  /* non-NULL for kernels before 2.6.9 */
  memset(&ev, 0, sizeof ev);
  if (epoll_ctl(p->h.fd, EPOLL_CTL_DEL, fd, &ev) != 0) {
    int err = errno;
    if (!known) return lipc_error(L, err, "epoll_ctl DEL", what);
  }
  if (known) poller_forget(L, p, 3, fd);
  lua_pushboolean(L, 1);
  return 1;
}

/* p:count() and #p: the registered objects that are still open (closed
 * ones are dropped from the table on the way). */
static int lpoll_count(lua_State *L) {
  lpoller *p = lipc_check(L, 1, &POLLER);
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, UV_OBJ);
  lua_Integer n = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    if (is_stale(L, -1)) {  /* clearing an existing field while traversing is allowed */
      int fd = (int)lua_tointeger(L, -2);
      poller_forget(L, p, 2, fd);
    } else {
      n++;
    }
    lua_pop(L, 1);
  }
  lua_pushinteger(L, n);
  return 1;
}

/* Push the event string of epoll events e (kept as upvalues 2..5 of the
 * iterator: "r", "w", "rw", "hup"). */
static void push_event(lua_State *L, uint32_t e) {
  int r = (e & EPOLLIN) != 0, w = (e & EPOLLOUT) != 0;
  int k = (r && w) ? 4 : r ? 2 : w ? 3 : 5;   /* hup: EPOLLHUP / EPOLLERR alone */
  lua_pushvalue(L, lua_upvalueindex(k));
}

/* 1 when event e belongs to the current registration of its descriptor. */
static int event_current(const lpoller *p, const struct epoll_event *e) {
  int fd = (int)(uint32_t)e->data.u64;
  return serial_of(p, fd) == (uint32_t)(e->data.u64 >> 32);
}

/* Iterator of p:wait: the next live (obj, ev) of the batch. */
static int lpoll_next(lua_State *L) {
  lpoller *p = poller_fastclass(L);
  if (!p->h.open) return 0;
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, UV_OBJ);
  while (p->pos < p->n) {
    struct epoll_event *e = &p->ev[p->pos++];
    if (!event_current(p, e)) continue;   /* an older registration */
    int fd = (int)(uint32_t)e->data.u64;
    lua_rawgeti(L, 2, fd);
    if (is_stale(L, -1)) {  /* closed while registered (maybe in this loop) */
      lua_pop(L, 1);
      poller_forget(L, p, 2, fd);
      continue;
    }
    push_event(L, e->events);
    return 2;
  }
  return 0;
}

/* 1 when the batch holds an event of a live registration; drops the
 * dead events before it. */
static int poller_live(lua_State *L, lpoller *p, int uvo) {
  for (int i = p->pos; i < p->n; i++) {
    int fd = (int)(uint32_t)p->ev[i].data.u64;
    if (event_current(p, &p->ev[i])) {
      lua_rawgeti(L, uvo, fd);
      int stale = is_stale(L, -1);
      lua_pop(L, 1);
      if (!stale) return 1;
      poller_forget(L, p, uvo, fd);
    }
    p->ev[i--] = p->ev[--p->n];   /* swap in the last event */
  }
  return 0;
}

/* Replace the epoll instance by a fresh one holding only the live
 * registrations (objects table at uvo), keeping the descriptor number.  A
 * descriptor closed while another process (a forked child) still holds its
 * file stays registered in the kernel, where no number reaches it any more:
 * level-triggered, it would make every later epoll_wait return at once.
 * 0 or an errno value. */
static int poller_rebuild(lua_State *L, lpoller *p, int uvo) {
  int nfd;
  LIPC_FDCALL(L, nfd, epoll_create1(EPOLL_CLOEXEC));
  if (nfd < 0) return errno;
  lua_pushnil(L);
  while (lua_next(L, uvo)) {
    int fd = (int)lua_tointeger(L, -2);
    uint64_t reg = fd < p->nserial ? p->serial[fd] : 0;
    int stale = is_stale(L, -1);
    lua_pop(L, 1);
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = (uint32_t)(reg >> 32);
    ev.data.u64 = (reg & 0xFFFFFFFFu) << 32 | (uint32_t)fd;
    /* clearing an existing field while traversing is allowed */
    if (stale || (uint32_t)reg == 0 || epoll_ctl(nfd, EPOLL_CTL_ADD, fd, &ev) != 0)
      poller_forget(L, p, uvo, fd);
  }
  int err = dup3(nfd, p->h.fd, O_CLOEXEC) < 0 ? errno : 0;
  close(nfd);
  return err;
}

/* The result of p:wait: the iterator over the batch (lpoll_next, p). */
static int poller_iter(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(2));   /* lpoll_next */
  lua_pushvalue(L, 1);
  return 2;
}

/* One try of p:wait (maxevents in w->acc[0], the objects table at 4):
 * epoll_pwait for the remaining time when the caller may block, else at
 * once; a task then waits for the epoll descriptor itself. */
static int poller_try(lua_State *L, lipc_wait *w) {
  lpoller *p = w->p;
  if (!p->h.open) return lipc_closed_error(L, &POLLER);  /* closed by another task */
  int r = epoll_pwait(p->h.fd, p->ev, (int)w->acc[0], w->block ? lipc_deadline_ms(&w->d) : 0, NULL);
  if (r < 0) {
    int err = errno;
    if (err == EINTR) return LIPC_EINTR;
    return lipc_error(L, err, "epoll_wait", NULL);
  }
  p->n = r;
  p->pos = 0;
  if (r > 0) {
    if (poller_live(L, p, 4) || lipc_deadline_expired(&w->d)) return poller_iter(L);
    int err = poller_rebuild(L, p, 4);  /* only dead registrations were ready */
    if (err != 0) return lipc_error(L, err, "epoll_create1", NULL);
    w->tries = 0;  /* progress: wait again at once */
  } else if (w->block || lipc_deadline_expired(&w->d)) {
    return poller_iter(L);  /* the deadline passed: an empty batch */
  }
  w->fd = p->h.fd;
  w->events = POLLIN;
  return LIPC_AGAIN;
}

/* The end of p:wait when the deadline passed while waiting: the iterator
 * over an empty batch (or the error, EINTR after Ctrl-C). */
static int poller_stop(lua_State *L, lipc_wait *w, int err) {
  lpoller *p = w->p;
  if (err != ETIMEDOUT) return lipc_error(L, err, "epoll_wait", NULL);
  p->n = p->pos = 0;
  return poller_iter(L);
}

/* p:wait([timeout [, maxevents=64]]): an iterator over the ready
 * (obj, ev) pairs, ev "r", "w", "rw" or "hup"; no items on timeout.
 * Each wait replaces the previous batch. */
static int lpoll_wait(lua_State *L) {
  lpoller *p = poller_fastclass(L);
  if (!p->h.open) return lipc_closed_error(L, &POLLER);
  lipc_wait w;
  lipc_wait_init(L, &w, 2, poller_try);
  int maxev = (int)lipc_optrange(L, 3, 64, 1, 65536);
  if (p->cap < maxev) {
    struct epoll_event *nev = realloc(p->ev, (size_t)maxev * sizeof *nev);
    if (nev == NULL) return luaL_error(L, "not enough memory");
    p->ev = nev;
    p->cap = maxev;
  }
  p->n = p->pos = 0;
  lua_settop(L, 3);
  lua_getiuservalue(L, 1, UV_OBJ);
  w.p = p;
  w.call = "epoll_wait";
  w.stop = poller_stop;
  w.acc[0] = maxev;
  return lipc_run_direct(L, &w, poller_try);
}

static const luaL_Reg methods[] = {
  {"add", lpoll_add},
  {"modify", lpoll_modify},
  {"remove", lpoll_remove},
  {"count", lpoll_count},
  {"fileno", lipc_m_fileno},
  {NULL, NULL}
};

/* Register ipc.poll, ipc.poller and lipc.poller (with __len). */
void lipc_open_poll(lua_State *L) {
  lipc_register(L, &POLLER, methods);
  luaL_getmetatable(L, POLLER.name);
  lua_pushcfunction(L, lpoll_count);
  lua_setfield(L, -2, "__len");
  /* wait = closure(metatable, next = closure(metatable, "r", "w", "rw", "hup")) */
  lua_getfield(L, -1, "__index");
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -3);
  lua_pushliteral(L, "r");
  lua_pushliteral(L, "w");
  lua_pushliteral(L, "rw");
  lua_pushliteral(L, "hup");
  lua_pushcclosure(L, lpoll_next, 5);
  lua_pushcclosure(L, lpoll_wait, 2);
  lua_setfield(L, -2, "wait");
  lua_pop(L, 2);
  lua_pushcfunction(L, lpoll_poll);
  lua_setfield(L, -2, "poll");
  lua_pushcfunction(L, lpoll_poller);
  lua_setfield(L, -2, "poller");
}
