/*
 * stream.h - the byte-stream methods shared by every descriptor that
 * carries a byte stream: pipe ends and FIFO ends (csrc/pipe.c, which
 * implements them), stream sockets and received descriptors
 * (csrc/socket.c).
 *
 * A class whose struct starts with lipc_stream gets read, write, lines,
 * setnonblock, tofile, direction and fileno by adding lipc_stream_methods to its
 * method table (luaL_setfuncs the two arrays), and calls
 * lipc_stream_release from its release function.  The engine behind
 * those methods is csrc/stream.c.
 */
#ifndef LIPC_STREAM_H
#define LIPC_STREAM_H

#include "core.h"

enum { LIPC_STREAM_READ = 1, LIPC_STREAM_WRITE = 2 };

typedef struct lipc_stream {
  lipc_handle h;        /* h.fd is the descriptor */
  char *buf;            /* bytes read ahead (lines), served first; malloc'd */
  size_t off, len, cap; /* unread bytes are buf[off .. off+len) */
  int dirs;             /* LIPC_STREAM_READ | LIPC_STREAM_WRITE (0: both) */
  int nonblock;         /* nonblocking (setnonblock): nothing ready = timeout 0 */
  int keep_nonblock;    /* the descriptor stays O_NONBLOCK whatever setnonblock
                         * says (a listener: accept4 must never block) */
  int socket;           /* use send(MSG_NOSIGNAL) instead of write */
  unsigned align;       /* 4096 | address mod 4096 of the bytes of the last
                         * big read's string (read_n); 0 before one */
  lua_State *main;      /* the main thread of the Lua state the object lives
                         * in (lipc_stream_attach): calls made on it take
                         * lipc_stream_run's hot path; NULL until known */
} lipc_stream;

/* read, write, lines, setnonblock, tofile, direction, fileno. */
extern const luaL_Reg lipc_stream_methods[];

/* Free the read-ahead buffer and close the descriptor; 0 or errno.
 * Every stream class's release calls it. */
int lipc_stream_release(lipc_stream *s);

/* The open stream at idx (of a class registered by lipc_stream_register,
 * whose struct starts with lipc_stream); raises otherwise. */
lipc_stream *lipc_stream_check(lua_State *L, int idx);
/* Register stream class cls (lipc_register) with the stream methods plus
 * extra (may be NULL). */
void lipc_stream_register(lua_State *L, const lipc_class *cls, const luaL_Reg *extra);

/* Probe the kernel once (RWF_NOWAIT, RWF_NOSIGNAL on pipes); every opener
 * of a stream class calls it first. */
void lipc_stream_init(void);

/* Make room in s's read-ahead buffer for at least extra more bytes after
 * the unread ones: 0 or ENOMEM. */
int lipc_stream_reserve(lipc_stream *s, size_t extra);

/* Record in s the main thread of L's state (for lipc_stream_run's hot
 * path); every maker of a stream object calls it. */
void lipc_stream_attach(lua_State *L, lipc_stream *s);

/* Run a blocking call on s on the one wait path (csrc/core.h) with the
 * try function try (a constant, so the hot path calls it directly): the
 * caller sets w->stop, w->call and w->acc; the timeout is at tidx; w->p
 * becomes s.  The one rule for "nothing ready" of every stream and
 * socket call: a timeout - 0 with nothing ready included - ends in nil,
 * "timeout", ETIMEDOUT (or what w->stop makes of it, e.g. the bytes
 * written so far), never EAGAIN; and a stream in nonblocking mode
 * (setnonblock(true), nonblock = true) called without a timeout is
 * called with timeout 0.
 * Hot path: on the main thread (never a task), without a timeout, on a
 * blocking stream, the try runs at once with only w->p, w->acc, w->block
 * (1), w->d.forever (1), w->tries (0) and w->fd (-1) set - one system call,
 * nothing else - and the full wait record is made only when it returns
 * LIPC_AGAIN or LIPC_EINTR (keeping w->acc and the Ctrl-C hook it started
 * with).  A try reads no other field of w->d while it may block. */
static inline int lipc_stream_run(lua_State *L, lipc_wait *w, lipc_stream *s, int tidx,
                                  lipc_try_fn try) __attribute__((always_inline));
/* The rest of lipc_stream_run: the full wait record; hook is the Ctrl-C
 * hook the hot path started with (hot) or unused. */
int lipc_stream_run_wait(lua_State *L, lipc_wait *w, lipc_stream *s, int tidx, int hot, lua_Hook hook);

static inline int lipc_stream_run(lua_State *L, lipc_wait *w, lipc_stream *s, int tidx,
                                  lipc_try_fn try) {
  w->try = try;
  if (L == s->main && !s->nonblock && (lua_gettop(L) < tidx || lua_type(L, tidx) == LUA_TNIL)) {
    lua_Hook hook = lua_gethook(L);  /* first: a Ctrl-C during the call sets another */
    w->p = s;
    w->block = 1;
    w->d.forever = 1;
    w->tries = 0;
    w->fd = -1;
    int n = try(L, w);
    if (n >= 0) return n;
    return lipc_stream_run_wait(L, w, s, tidx, 1, hook);
  }
  return lipc_stream_run_wait(L, w, s, tidx, 0, NULL);
}

/* "read", "write" or "rw". */
const char *lipc_stream_dirname(int dirs);

/* Push a new closed lipc.pipe userdata (csrc/pipe.c); put a descriptor
 * in it with lipc_pipe_set once it exists. */
lipc_stream *lipc_pipe_new(lua_State *L);
/* Hand fd (owned from now on) to the pipe end s made by lipc_pipe_new,
 * with its directions; marks it open. */
void lipc_pipe_set(lipc_stream *s, int fd, int dirs);

#endif
