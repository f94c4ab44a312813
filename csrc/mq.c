/*
 * mq.c - POSIX message queues (mq_overview(7)): ipc.mq.open, ipc.mq.unlink
 * and the lipc.mq handle (send, receive, attr, setnonblock, unlink, name,
 * fileno).  On Linux an mqd_t is a descriptor, so h.fd holds it and the
 * queue can be polled.
 *
 * send and receive run on the one wait path (core.h): when the caller may
 * block, one mq_send/mq_receive (no timeout) or mq_timedsend/receive (the
 * deadline on CLOCK_REALTIME) does the whole wait; inside a task a try is
 * mq_timed* with a time long past, and the task waits for the descriptor.
 */
#include "core.h"

#include <fcntl.h>
#include <limits.h>
#include <mqueue.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* The kernel's hard ceilings for privileged (CAP_SYS_RESOURCE) callers. */
#define MQ_HARD_MSGMAX 65536L
#define MQ_HARD_MSGSIZEMAX (16L * 1024 * 1024)

typedef struct lmq {
  lipc_handle h;
  long msgsize;          /* mq_msgsize, fixed when the queue was created */
  char *buf;             /* receive buffer of msgsize bytes (first receive) */
  dev_t dev;             /* the queue's identity on the mqueue file system */
  ino_t ino;             /* (fstat of the descriptor; ino 0: unknown) */
  char name[NAME_MAX + 2];
} lmq;

/* Whether q->name still leads to the queue q has open (its name may have
 * been removed and another queue made under it since): 1 yes, 0 no (another
 * queue, or none), -1 cannot tell.  Opening the name and comparing what
 * fstat says works without a mounted mqueue file system; a queue whose mode
 * denies us both directions is looked up through a mount instead. */
static int mq_same(lmq *q) {
  if (q->ino == 0) return -1;
  struct stat st;
  int err = EACCES;
  static const int modes[] = {O_RDONLY, O_WRONLY};
  for (int i = 0; i < 2 && err == EACCES; i++) {
    mqd_t d = mq_open(q->name, modes[i] | O_NONBLOCK | O_CLOEXEC);
    if (d == (mqd_t)-1) { err = errno; continue; }
    int rc = fstat((int)d, &st);
    err = rc == 0 ? 0 : errno;
    mq_close(d);
    if (rc == 0) return st.st_dev == q->dev && st.st_ino == q->ino;
  }
  if (err == ENOENT) return 0;
  err = lipc_mqueue_lstat(q->name, q->dev, &st);
  if (err == 0) return st.st_ino == q->ino;
  return err == ENOENT ? 0 : -1;
}

/* Remove q's name if it still leads to q's queue: 0, or an errno value
 * (ENOENT when the name is gone or names another queue now).  When the
 * identity cannot be told (no descriptor left, no mount: rare), the name is
 * removed as before, the owner's duty. */
static int mq_unlink_own(lmq *q) {
  if (mq_same(q) == 0) return ENOENT;
  return mq_unlink(q->name) == 0 ? 0 : errno;
}

/* Close the descriptor, unlink the name when owned, free the buffer. */
static int mq_release(lipc_handle *h, int remove_name) {
  lmq *q = (lmq *)h;
  int err = 0;
  /* the name is checked while the descriptor still holds the queue: its
   * inode cannot be reused by a new queue before we compare */
  int uerr = remove_name ? mq_unlink_own(q) : 0;
  if (h->fd >= 0 && mq_close((mqd_t)h->fd) != 0) err = errno;
  h->fd = -1;
  if (uerr != 0 && uerr != ENOENT && err == 0) err = uerr;
  free(q->buf);
  q->buf = NULL;
  return err;
}

/* "/jobs, fd=5" for __tostring. */
static void mq_describe(lipc_handle *h, luaL_Buffer *b) {
  char tmp[32];
  luaL_addstring(b, ((lmq *)h)->name);
  snprintf(tmp, sizeof tmp, ", fd=%d", h->fd);
  luaL_addstring(b, tmp);
}

/* name= and fd= of the audit entry. */
static void mq_audit(lua_State *L, lipc_handle *h) {
  lua_pushstring(L, ((lmq *)h)->name);
  lua_setfield(L, -2, "name");
  lua_pushinteger(L, h->fd);
  lua_setfield(L, -2, "fd");
}

static const lipc_class MQ_CLASS = {
  "lipc.mq", "mq", sizeof(lmq), mq_release, mq_describe, mq_audit, 0
};


/* sysconf(_SC_MQ_PRIO_MAX): priorities are 0 .. this - 1. */
static long prio_max(void) {
  static long cached;
  if (cached == 0) {
    long v = sysconf(_SC_MQ_PRIO_MAX);
    cached = v > 0 ? v : 32768;
  }
  return cached;
}

/* Push nil, a message naming the limit behind an mq_open failure, err. */
static int open_error(lua_State *L, int err, const char *name, const struct mq_attr *attr) {
  char extra[256] = "";
  if (err == EINVAL && attr != NULL) {
    long lmax = (long)lipc_proc_value("/proc/sys/fs/mqueue/msg_max", 0, -1);
    long lsize = (long)lipc_proc_value("/proc/sys/fs/mqueue/msgsize_max", 0, -1);
    if (attr->mq_maxmsg > lmax)
      snprintf(extra, sizeof extra, " (maxmsg %ld exceeds the limit %ld of /proc/sys/fs/mqueue/msg_max;"
               " with CAP_SYS_RESOURCE up to %ld)", attr->mq_maxmsg, lmax, MQ_HARD_MSGMAX);
    else if (attr->mq_msgsize > lsize)
      snprintf(extra, sizeof extra, " (msgsize %ld exceeds the limit %ld of /proc/sys/fs/mqueue/msgsize_max;"
               " with CAP_SYS_RESOURCE up to %ld)", attr->mq_msgsize, lsize, MQ_HARD_MSGSIZEMAX);
  } else if (err == EMFILE) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_MSGQUEUE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
      snprintf(extra, sizeof extra, " (the descriptor limit, or RLIMIT_MSGQUEUE of %llu bytes for all"
               " of this user's queues, counting maxmsg * msgsize each)", (unsigned long long)rl.rlim_cur);
  } else if (err == ENOSPC) {
    snprintf(extra, sizeof extra, " (the limit %ld of /proc/sys/fs/mqueue/queues_max is reached)",
             (long)lipc_proc_value("/proc/sys/fs/mqueue/queues_max", 0, -1));
  }
  lua_pushnil(L);
  lua_pushfstring(L, "mq_open %s: %s%s", name, strerror(err), extra);
  lua_pushinteger(L, err);
  return 3;
}

static const char *const OPEN_OPTS[] = {
  "create", "excl", "mode", "maxmsg", "msgsize", "persist", "nonblock", "access", NULL
};

/* ipc.mq.open([name], opts): open or create a queue; nil name = generated. */
static int lmq_open(lua_State *L) {
  int gen = lua_isnoneornil(L, 1);
  const char *name = gen ? NULL : lipc_checkposixname(L, 1, NAME_MAX + 1);
  lipc_checkoptions(L, 2, OPEN_OPTS);
  int create = lipc_optbool(L, 2, "create", gen);
  int excl = lipc_optbool(L, 2, "excl", 0);
  mode_t mode = lipc_optmode(L, 2, "mode", 0600);
  lua_Integer maxmsg = lipc_optint(L, 2, "maxmsg", 0, 1, LONG_MAX);
  lua_Integer msgsize = lipc_optint(L, 2, "msgsize", 0, 1, LONG_MAX);
  int persist = lipc_optbool(L, 2, "persist", 0);
  int nonblock = lipc_optbool(L, 2, "nonblock", 0);
  const char *access = lipc_optstring(L, 2, "access", "rw");
  int acc;
  if (strcmp(access, "rw") == 0) acc = O_RDWR;
  else if (strcmp(access, "r") == 0) acc = O_RDONLY;
  else if (strcmp(access, "w") == 0) acc = O_WRONLY;
  else return luaL_argerror(L, 2, "option 'access': \"r\", \"w\" or \"rw\" expected");
  if (gen && !create) return luaL_argerror(L, 2, "a generated name (no name given) needs create = true");
  if (excl && !create) return luaL_argerror(L, 2, "option 'excl': needs create = true");
  if ((maxmsg || msgsize) && !create)
    return luaL_argerror(L, 2, "option 'maxmsg'/'msgsize': needs create = true");

  struct mq_attr attr, *pattr = NULL;
  if (maxmsg || msgsize) {
    memset(&attr, 0, sizeof attr);
    attr.mq_maxmsg = maxmsg ? (long)maxmsg : (long)lipc_proc_value("/proc/sys/fs/mqueue/msg_default", 0, 10);
    attr.mq_msgsize = msgsize ? (long)msgsize : (long)lipc_proc_value("/proc/sys/fs/mqueue/msgsize_default", 0, 8192);
    pattr = &attr;
  }

  lmq *q = lipc_new(L, &MQ_CLASS, 0);
  if (gen) lipc_genname(q->name, sizeof q->name, "/", "");
  else snprintf(q->name, sizeof q->name, "%s", name);
  int flags = acc | O_CLOEXEC | (nonblock ? O_NONBLOCK : 0);
  mqd_t fd = (mqd_t)-1;
  int created = 0, err = 0;
  for (int tries = 0; tries < 100; tries++) {
    if (create) {
      /* exclusive first: only a queue this call made is ours to unlink */
      LIPC_FDCALL(L, fd, mq_open(q->name, flags | O_CREAT | O_EXCL, mode, pattr));
      if (fd != (mqd_t)-1) { created = 1; break; }
      err = errno;
      if (err == EEXIST && gen) {  /* taken (by chance, or by someone else): the next name */
        lipc_genname(q->name, sizeof q->name, "/", "");
        continue;
      }
      if (err != EEXIST || excl) break;
    }
    LIPC_FDCALL(L, fd, mq_open(q->name, flags));
    if (fd != (mqd_t)-1) break;
    err = errno;
    if (!(create && err == ENOENT)) break;  /* removed in between: create again */
  }
  if (fd == (mqd_t)-1) return open_error(L, err, q->name, pattr);
  q->h.fd = (int)fd;
  q->h.owns = (unsigned char)created;
  q->h.persist = (unsigned char)persist;
  struct mq_attr now;
  if (mq_getattr(fd, &now) != 0) {
    err = errno;
    q->h.open = 1;
    (void)lipc_release(&q->h);
    return lipc_error(L, err, "mq_getattr", q->name);
  }
  q->msgsize = now.mq_msgsize;
  struct stat st;
  if (fstat(q->h.fd, &st) == 0) { q->dev = st.st_dev; q->ino = st.st_ino; }
  q->h.open = 1;
  return 1;
}

/* The absolute time for one try of mq_timed*: the deadline on
 * CLOCK_REALTIME (the clock the kernel measures abs_timeout on) when the
 * caller may block, else a time long past, which makes the call a
 * nonblocking try on a blocking descriptor (ETIMEDOUT when it would
 * block; EAGAIN only when the descriptor itself is O_NONBLOCK).  NULL:
 * block with no timeout. */
static const struct timespec *mq_trytime(lipc_wait *w, struct timespec *ts) {
  if (!w->block) { ts->tv_sec = 0; ts->tv_nsec = 0; return ts; }
  if (w->d.forever) return NULL;
  lipc_deadline_abs(&w->d, CLOCK_REALTIME, ts);
  return ts;
}

/* After a failed mq_timed* try: LIPC_AGAIN to wait for the queue (also
 * when the realtime clock ran out before the monotonic deadline: the
 * wait path decides), LIPC_EINTR, or the result: a descriptor opened
 * nonblocking tries once (timeout), another error names the queue. */
static int mq_tryfail(lua_State *L, lipc_wait *w, lmq *q, int err, short events, const char *call) {
  if (err == ETIMEDOUT) {
    w->fd = q->h.fd;
    w->events = events;
    return LIPC_AGAIN;
  }
  if (err == EINTR) return LIPC_EINTR;
  if (err == EAGAIN) return lipc_timeout(L);
  return lipc_error(L, err, call, q->name);
}

/* The end of a send or receive that waited in vain: timeout, or the error
 * (EINTR after Ctrl-C) naming the queue. */
static int mq_stop(lua_State *L, lipc_wait *w, int err) {
  return lipc_fail(L, err, w->call, ((lmq *)w->p)->name);
}

/* One try of send: the message at 2, its priority in w->acc[0]. */
static int mq_trysend(lua_State *L, lipc_wait *w) {
  lmq *q = w->p;
  if (!q->h.open) return lipc_closed_error(L, &MQ_CLASS);  /* closed by another task */
  size_t len;
  const char *msg = lua_tolstring(L, 2, &len);
  struct timespec ts;
  const struct timespec *at = mq_trytime(w, &ts);
  int rc = at == NULL ? mq_send((mqd_t)q->h.fd, msg, len, (unsigned)w->acc[0])
                      : mq_timedsend((mqd_t)q->h.fd, msg, len, (unsigned)w->acc[0], at);
  if (rc != 0) return mq_tryfail(L, w, q, errno, POLLOUT, "mq_send");
  lua_pushboolean(L, 1);
  return 1;
}

/* q:send(msg, priority, timeout): true, or nil, "timeout" when full. */
static int lmq_send(lua_State *L) {
  lmq *q = lipc_check(L, 1, &MQ_CLASS);
  size_t len;
  luaL_checklstring(L, 2, &len);
  unsigned prio = (unsigned)lipc_optrange(L, 3, 0, 0, prio_max() - 1);
  lipc_wait w;
  lipc_wait_init(L, &w, 4, mq_trysend);
  if (len > (size_t)q->msgsize) {
    lua_pushnil(L);
    lua_pushfstring(L, "mq_send %s: message too long (%I > msgsize %I)", q->name,
                    (lua_Integer)len, (lua_Integer)q->msgsize);
    lua_pushinteger(L, EMSGSIZE);
    return 3;
  }
  w.p = q;
  w.call = "mq_send";
  w.stop = mq_stop;
  w.acc[0] = prio;
  return lipc_run_direct(L, &w, mq_trysend);
}

/* One try of receive into the handle's buffer. */
static int mq_tryreceive(lua_State *L, lipc_wait *w) {
  lmq *q = w->p;
  if (!q->h.open) return lipc_closed_error(L, &MQ_CLASS);  /* closed by another task */
  unsigned prio = 0;
  struct timespec ts;
  const struct timespec *at = mq_trytime(w, &ts);
  ssize_t n = at == NULL ? mq_receive((mqd_t)q->h.fd, q->buf, (size_t)q->msgsize, &prio)
                         : mq_timedreceive((mqd_t)q->h.fd, q->buf, (size_t)q->msgsize, &prio, at);
  if (n < 0) return mq_tryfail(L, w, q, errno, POLLIN, "mq_receive");
  lua_pushlstring(L, q->buf, (size_t)n);
  lua_pushinteger(L, prio);
  return 2;
}

/* q:receive(timeout): msg, priority (highest priority first, FIFO within). */
static int lmq_receive(lua_State *L) {
  lmq *q = lipc_check(L, 1, &MQ_CLASS);
  lipc_wait w;
  lipc_wait_init(L, &w, 2, mq_tryreceive);
  if (q->buf == NULL) {
    /* one buffer per handle, reused: no allocation per message (a
     * message is copied out of it before anything else can run) */
    q->buf = malloc((size_t)q->msgsize);
    if (q->buf == NULL) return lipc_error(L, ENOMEM, "mq_receive", q->name);
  }
  w.p = q;
  w.call = "mq_receive";
  w.stop = mq_stop;
  return lipc_run_direct(L, &w, mq_tryreceive);
}

/* q:attr(): { maxmsg=, msgsize=, curmsgs=, nonblock= }. */
static int lmq_attr(lua_State *L) {
  lmq *q = lipc_check(L, 1, &MQ_CLASS);
  struct mq_attr a;
  if (mq_getattr((mqd_t)q->h.fd, &a) != 0) return lipc_error(L, errno, "mq_getattr", q->name);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, a.mq_maxmsg);
  lua_setfield(L, -2, "maxmsg");
  lua_pushinteger(L, a.mq_msgsize);
  lua_setfield(L, -2, "msgsize");
  lua_pushinteger(L, a.mq_curmsgs);
  lua_setfield(L, -2, "curmsgs");
  lua_pushboolean(L, (a.mq_flags & O_NONBLOCK) != 0);
  lua_setfield(L, -2, "nonblock");
  return 1;
}

/* q:setnonblock(bool): set O_NONBLOCK on this descriptor (mq_setattr). */
static int lmq_setnonblock(lua_State *L) {
  lmq *q = lipc_check(L, 1, &MQ_CLASS);
  luaL_checktype(L, 2, LUA_TBOOLEAN);
  struct mq_attr a;
  memset(&a, 0, sizeof a);
  a.mq_flags = lua_toboolean(L, 2) ? O_NONBLOCK : 0;
  if (mq_setattr((mqd_t)q->h.fd, &a, NULL) != 0) return lipc_error(L, errno, "mq_setattr", q->name);
  lua_pushboolean(L, 1);
  return 1;
}

/* q:unlink(): remove the name now; this handle stays usable. */
static int lmq_unlink(lua_State *L) {
  lmq *q = lipc_check(L, 1, &MQ_CLASS);
  int err = mq_unlink_own(q);  /* not another queue made under our old name */
  if (err != 0) return lipc_error(L, err, "mq_unlink", q->name);
  q->h.owns = 0;  /* the name is gone: a later queue of that name is not ours */
  lua_pushboolean(L, 1);
  return 1;
}

/* q:name(): the queue's name ("/jobs"). */
static int lmq_name(lua_State *L) {
  lmq *q = lipc_check(L, 1, &MQ_CLASS);
  lua_pushstring(L, q->name);
  return 1;
}

/* ipc.mq.unlink(name): remove a queue name. */
static int lmq_unlink_name(lua_State *L) {
  const char *name = lipc_checkposixname(L, 1, NAME_MAX + 1);
  if (mq_unlink(name) != 0) return lipc_error(L, errno, "mq_unlink", name);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg methods[] = {
  {"send", lmq_send},
  {"receive", lmq_receive},
  {"recv", lmq_receive},
  {"attr", lmq_attr},
  {"setnonblock", lmq_setnonblock},
  {"unlink", lmq_unlink},
  {"name", lmq_name},
  {"fileno", lipc_m_fileno},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"open", lmq_open},
  {"unlink", lmq_unlink_name},
  {NULL, NULL}
};

/* Register lipc.mq and fill ipc.mq. */
void lipc_open_mq(lua_State *L) {
  lipc_register(L, &MQ_CLASS, methods);
  lipc_subtable(L, -1, "mq");
  luaL_setfuncs(L, funcs, 0);
  lua_pushinteger(L, prio_max());
  lua_setfield(L, -2, "PRIO_MAX");
  lua_pop(L, 1);
}
