/*
 * msg.c - System V message queues (sysvipc(7)): ipc.ftok, ipc.IPC_PRIVATE,
 * ipc.msg.get and the lipc.msg handle (send, receive, stat, remove, id, key).
 *
 * SysV queues have no descriptor and no timed calls.  send and receive run
 * on the one wait path (core.h).  A call that may block with no timeout is
 * the plain msgsnd/msgrcv.  Otherwise (a timeout, or inside a task) a try
 * is msgsnd/msgrcv with IPC_NOWAIT and there is nothing to wait for, so the
 * wait path retries after a sleep starting at 50 us and doubling up to 5 ms
 * (capped by the deadline): bounded CPU, no signals, no threads; the cost
 * is up to one sleep step of extra latency when the message arrives while
 * the caller sleeps.
 */
#include "core.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/stat.h>

#define MSG_BUF_CAP ((size_t)1 << 30)

/* The msgbuf of msgsnd(2)/msgrcv(2): a long type, then the bytes. */
typedef struct msgbuf_ {
  long mtype;
  char mtext[];
} msgbuf_;

typedef struct lmsg {
  lipc_handle h;
  int id;
  key_t key;
  size_t cap;            /* bytes of buf->mtext */
  msgbuf_ *buf;          /* send/receive buffer (first use), reused */
} lmsg;

/* Remove the queue when owned (IPC_RMID), free the buffer. */
static int msg_release(lipc_handle *h, int remove_name) {
  lmsg *m = (lmsg *)h;
  int err = 0;
  if (remove_name && msgctl(m->id, IPC_RMID, NULL) != 0 && errno != EINVAL && errno != EIDRM)
    err = errno;
  free(m->buf);
  m->buf = NULL;
  m->cap = 0;
  return err;
}

/* "id=3, key=0x41000123" (or key=private) for __tostring. */
static void msg_describe(lipc_handle *h, luaL_Buffer *b) {
  lmsg *m = (lmsg *)h;
  char tmp[64];
  if (m->key == IPC_PRIVATE) snprintf(tmp, sizeof tmp, "id=%d, key=private", m->id);
  else snprintf(tmp, sizeof tmp, "id=%d, key=0x%08x", m->id, (unsigned)m->key);
  luaL_addstring(b, tmp);
}

/* id= and key= of the audit entry. */
static void msg_audit(lua_State *L, lipc_handle *h) {
  lmsg *m = (lmsg *)h;
  lua_pushinteger(L, m->id);
  lua_setfield(L, -2, "id");
  lua_pushinteger(L, m->key);
  lua_setfield(L, -2, "key");
}

static const lipc_class MSG_CLASS = {
  "lipc.msg", "msg", sizeof(lmsg), msg_release, msg_describe, msg_audit, 0
};


/* msgmax (largest message), read once; fresh = 1 reads it again. */
static size_t msgmax(int fresh) {
  static long cached;
  if (cached <= 0 || fresh) {
    long v = (long)lipc_proc_value("/proc/sys/kernel/msgmax", 0, 8192);
    cached = v > 0 ? v : 8192;
  }
  return (size_t)cached;
}

/* Make m->buf hold at least need bytes of text; 0 or ENOMEM. */
static int reserve(lmsg *m, size_t need) {
  if (m->buf != NULL && m->cap >= need) return 0;
  if (need > MSG_BUF_CAP) return ENOMEM;
  msgbuf_ *nb = realloc(m->buf, sizeof(msgbuf_) + need);
  if (nb == NULL) return ENOMEM;
  m->buf = nb;
  m->cap = need;
  return 0;
}

/* "id=N" for error messages. */
static const char *idstr(const lmsg *m, char *buf, size_t len) {
  snprintf(buf, len, "id=%d", m->id);
  return buf;
}

/* ipc.ftok(path, proj_id): the System V key of an existing file. */
static int lmsg_ftok(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  if (memchr(path, '\0', len) != NULL) return luaL_argerror(L, 1, "path contains a NUL byte");
  if (len == 0) return luaL_argerror(L, 1, "path is empty");
  int proj = (int)lipc_checkrange(L, 2, 1, 255);
  key_t key = ftok(path, proj);
  if (key == (key_t)-1) return lipc_error(L, errno, "ftok", path);
  lua_pushinteger(L, key);
  return 1;
}

static const char *const GET_OPTS[] = { "create", "excl", "mode", "persist", NULL };

/* ipc.msg.get([key], opts): open or create the queue of key (nil or
 * ipc.IPC_PRIVATE: a new private queue, owned). */
static int lmsg_get(lua_State *L) {
  key_t key = (key_t)lipc_optrange(L, 1, IPC_PRIVATE, INT32_MIN, INT32_MAX);
  lipc_checkoptions(L, 2, GET_OPTS);
  int create = lipc_optbool(L, 2, "create", key == IPC_PRIVATE);
  int excl = lipc_optbool(L, 2, "excl", 0);
  mode_t mode = lipc_optmode(L, 2, "mode", 0600);
  int persist = lipc_optbool(L, 2, "persist", 0);
  if (excl && !create) return luaL_argerror(L, 2, "option 'excl': needs create = true");
  if (mode & ~0777u) return luaL_argerror(L, 2, "option 'mode': permission bits only (0 to 0777)");

  lmsg *m = lipc_new(L, &MSG_CLASS, 0);
  int id = -1, created = 0, err = 0;
  for (int tries = 0; tries < 100; tries++) {
    if (key == IPC_PRIVATE) {
      id = msgget(IPC_PRIVATE, IPC_CREAT | (int)mode);
      if (id >= 0) created = 1; else err = errno;
      break;
    }
    if (create) {
      /* exclusive first: only a queue this call made is ours to remove */
      id = msgget(key, IPC_CREAT | IPC_EXCL | (int)mode);
      if (id >= 0) { created = 1; break; }
      err = errno;
      if (err != EEXIST || excl) break;
    }
    id = msgget(key, 0);
    if (id >= 0) break;
    err = errno;
    if (!(create && err == ENOENT)) break;  /* removed in between: create again */
  }
  if (id < 0) {
    char what[48];
    snprintf(what, sizeof what, "key=0x%08x", (unsigned)key);
    if (err == ENOSPC) {
      lua_pushnil(L);
      lua_pushfstring(L, "msgget %s: %s (the limit %d of /proc/sys/kernel/msgmni is reached)", what,
                      strerror(err), (int)lipc_proc_value("/proc/sys/kernel/msgmni", 0, -1));
      lua_pushinteger(L, err);
      return 3;
    }
    return lipc_error(L, err, "msgget", what);
  }
  m->id = id;
  m->key = key;
  m->h.owns = (unsigned char)created;
  m->h.persist = (unsigned char)persist;
  m->h.open = 1;
  return 1;
}

/* When len can never fit the queue (more than its qbytes), push nil, a
 * message, EMSGSIZE and return 1: msgsnd would wait forever.  0 otherwise
 * (also when IPC_STAT is not allowed). */
static int never_fits(lua_State *L, lmsg *m, size_t len) {
  struct msqid_ds ds;
  if (msgctl(m->id, IPC_STAT, &ds) != 0 || len <= (size_t)ds.msg_qbytes) return 0;
  lua_pushnil(L);
  lua_pushfstring(L, "msgsnd id=%d: message too long (%I > the queue's qbytes %I)", m->id,
                  (lua_Integer)len, (lua_Integer)ds.msg_qbytes);
  lua_pushinteger(L, EMSGSIZE);
  return 1;
}

/* The end of a send or receive that waited in vain: timeout, or the error
 * (EINTR after Ctrl-C) naming the queue. */
static int msg_stop(lua_State *L, lipc_wait *w, int err) {
  char what[32];
  return lipc_fail(L, err, w->call, idstr(w->p, what, sizeof what));
}

/* One try of send: the data at 3, mtype in w->acc[0]; w->acc[1] is 1 once
 * a full queue was checked for a message that can never fit. */
static int msg_trysend(lua_State *L, lipc_wait *w) {
  lmsg *m = w->p;
  if (!m->h.open) return lipc_closed_error(L, &MSG_CLASS);  /* closed by another task */
  size_t len;
  const char *data = lua_tolstring(L, 3, &len);
  char what[32];
  /* the buffer is the handle's: fill it at every try, another task may
   * have used it while this one waited */
  int err = reserve(m, len > msgmax(0) ? len : msgmax(0));
  if (err) return lipc_error(L, err, "msgsnd", idstr(m, what, sizeof what));
  m->buf->mtype = (long)w->acc[0];
  memcpy(m->buf->mtext, data, len);
  for (;;) {
    /* the first try never blocks: a full queue is then checked once */
    int wait = w->block && w->d.forever && w->acc[1];
    if (msgsnd(m->id, m->buf, len, wait ? 0 : IPC_NOWAIT) == 0) break;
    err = errno;
    if (err == EINTR) return LIPC_EINTR;
    if (err != EAGAIN) return lipc_error(L, err, "msgsnd", idstr(m, what, sizeof what));
    if (!w->acc[1]) {
      w->acc[1] = 1;
      if (never_fits(L, m, len)) return 3;
      if (w->block && w->d.forever) continue;
    }
    return LIPC_AGAIN;  /* nothing to poll: the wait path backs off */
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* m:send(mtype, data, timeout): true; nil, "timeout" while the queue is full. */
static int lmsg_send(lua_State *L) {
  lmsg *m = lipc_check(L, 1, &MSG_CLASS);
  long mtype = (long)lipc_checkrange(L, 2, 1, LONG_MAX);
  size_t len;
  luaL_checklstring(L, 3, &len);
  lipc_wait w;
  lipc_wait_init(L, &w, 4, msg_trysend);
  char what[32];
  if (len > msgmax(0) && len > msgmax(1)) {
    lua_pushnil(L);
    lua_pushfstring(L, "msgsnd %s: message too long (%I > msgmax %I of /proc/sys/kernel/msgmax)",
                    idstr(m, what, sizeof what), (lua_Integer)len, (lua_Integer)msgmax(0));
    lua_pushinteger(L, EINVAL);
    return 3;
  }
  w.p = m;
  w.call = "msgsnd";
  w.stop = msg_stop;
  w.acc[0] = mtype;
  return lipc_run_direct(L, &w, msg_trysend);
}

/* One try of receive: mtype in w->acc[0]. */
static int msg_tryreceive(lua_State *L, lipc_wait *w) {
  lmsg *m = w->p;
  if (!m->h.open) return lipc_closed_error(L, &MSG_CLASS);  /* closed by another task */
  char what[32];
  int err = reserve(m, msgmax(0));
  if (err) return lipc_error(L, err, "msgrcv", idstr(m, what, sizeof what));
  for (;;) {
    int wait = w->block && w->d.forever;
    ssize_t n = msgrcv(m->id, m->buf, m->cap, (long)w->acc[0], wait ? 0 : IPC_NOWAIT);
    if (n >= 0) {
      lua_pushlstring(L, m->buf->mtext, (size_t)n);
      lua_pushinteger(L, m->buf->mtype);
      return 2;
    }
    err = errno;
    if (err == EINTR) return LIPC_EINTR;
    if (err == ENOMSG) return LIPC_AGAIN;  /* nothing to poll: the wait path backs off */
    if (err != E2BIG) return lipc_error(L, err, "msgrcv", idstr(m, what, sizeof what));
    /* longer than the buffer (msgmax was raised): grow, the message
     * stayed in the queue */
    size_t want = msgmax(1);
    if (want <= m->cap) want = m->cap * 2;
    if (reserve(m, want) != 0) return lipc_error(L, E2BIG, "msgrcv", idstr(m, what, sizeof what));
  }
}

/* m:receive(mtype, timeout): data, mtype.  mtype 0 = the first message,
 * > 0 = the first of that type, < 0 = the first of the lowest type <= |mtype|. */
static int lmsg_receive(lua_State *L) {
  lmsg *m = lipc_check(L, 1, &MSG_CLASS);
  long mtype = (long)lipc_optrange(L, 2, 0, -LONG_MAX, LONG_MAX);
  lipc_wait w;
  lipc_wait_init(L, &w, 3, msg_tryreceive);
  w.p = m;
  w.call = "msgrcv";
  w.stop = msg_stop;
  w.acc[0] = mtype;
  return lipc_run_direct(L, &w, msg_tryreceive);
}

/* Set t[k] = v on the table on top of the stack. */
static void setint(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

/* m:stat(): the msqid_ds of msgctl(IPC_STAT) as a table. */
static int lmsg_stat(lua_State *L) {
  lmsg *m = lipc_check(L, 1, &MSG_CLASS);
  struct msqid_ds ds;
  char what[32];
  if (msgctl(m->id, IPC_STAT, &ds) != 0) return lipc_error(L, errno, "msgctl", idstr(m, what, sizeof what));
  lua_createtable(L, 0, 13);
  setint(L, "qnum", (lua_Integer)ds.msg_qnum);
  setint(L, "qbytes", (lua_Integer)ds.msg_qbytes);
  setint(L, "cbytes", (lua_Integer)ds.__msg_cbytes);
  setint(L, "lspid", ds.msg_lspid);
  setint(L, "lrpid", ds.msg_lrpid);
  setint(L, "mode", ds.msg_perm.mode & 0777);
  setint(L, "uid", ds.msg_perm.uid);
  setint(L, "gid", ds.msg_perm.gid);
  setint(L, "cuid", ds.msg_perm.cuid);
  setint(L, "cgid", ds.msg_perm.cgid);
  setint(L, "stime", (lua_Integer)ds.msg_stime);
  setint(L, "rtime", (lua_Integer)ds.msg_rtime);
  setint(L, "ctime", (lua_Integer)ds.msg_ctime);
  return 1;
}

/* m:remove(): IPC_RMID now; blocked peers get EIDRM. */
static int lmsg_remove(lua_State *L) {
  lmsg *m = lipc_check(L, 1, &MSG_CLASS);
  char what[32];
  if (msgctl(m->id, IPC_RMID, NULL) != 0) return lipc_error(L, errno, "msgctl", idstr(m, what, sizeof what));
  m->h.owns = 0;  /* gone: a later queue with the same id is not ours */
  lua_pushboolean(L, 1);
  return 1;
}

/* m:id(): the queue identifier. */
static int lmsg_id(lua_State *L) {
  lmsg *m = lipc_check(L, 1, &MSG_CLASS);
  lua_pushinteger(L, m->id);
  return 1;
}

/* m:key(): the key it was opened with (0 for IPC_PRIVATE). */
static int lmsg_key(lua_State *L) {
  lmsg *m = lipc_check(L, 1, &MSG_CLASS);
  lua_pushinteger(L, m->key);
  return 1;
}

static const luaL_Reg methods[] = {
  {"send", lmsg_send},
  {"receive", lmsg_receive},
  {"recv", lmsg_receive},
  {"stat", lmsg_stat},
  {"remove", lmsg_remove},
  {"id", lmsg_id},
  {"key", lmsg_key},
  {NULL, NULL}
};

/* Register lipc.msg; fill ipc.msg, ipc.ftok and ipc.IPC_PRIVATE. */
void lipc_open_msg(lua_State *L) {
  lipc_register(L, &MSG_CLASS, methods);
  lua_pushcfunction(L, lmsg_ftok);
  lua_setfield(L, -2, "ftok");
  lua_pushinteger(L, IPC_PRIVATE);
  lua_setfield(L, -2, "IPC_PRIVATE");
  lipc_subtable(L, -1, "msg");
  lua_pushcfunction(L, lmsg_get);
  lua_setfield(L, -2, "get");
  lua_pop(L, 1);
}

/* ---- ipc.poll's probe (csrc/ready.h) ---------------------------------- */

#include "ready.h"

int lipc_msg_ready(lipc_handle *h) {
  struct msqid_ds ds;
  if (msgctl(((lmsg *)h)->id, IPC_STAT, &ds) != 0) return 1;   /* removed, no access: recv reports it */
  return ds.msg_qnum > 0;
}
