/*
 * stream.h - the byte-stream methods shared by every descriptor that
 * carries a byte stream: pipe ends and FIFO ends (csrc/pipe.c, which
 * implements them), stream sockets and received descriptors
 * (csrc/socket.c).
 *
 * A class whose struct starts with lipc_stream gets read, write, lines,
 * setnonblock, tofile and fileno by adding lipc_stream_methods to its
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
  int nonblock;         /* O_NONBLOCK is set on the descriptor */
  int socket;           /* use send(MSG_NOSIGNAL) instead of write */
  unsigned align;       /* 4096 | address mod 4096 of the bytes of the last
                         * big read's string (read_n); 0 before one */
  uint64_t tag;         /* lipc_stream_check's fast identity mark: set once
                         * the object was checked the slow way (open),
                         * cleared by lipc_stream_release; 0 otherwise */
} lipc_stream;

/* read, write, lines, setnonblock, tofile, fileno. */
extern const luaL_Reg lipc_stream_methods[];

/* Free the read-ahead buffer and close the descriptor; 0 or errno.
 * Every stream class's release calls it (it also clears tag). */
int lipc_stream_release(lipc_stream *s);

/* The open stream at idx (any class with LIPC_CLASS_STREAM in its
 * flags, whose struct starts with lipc_stream); raises otherwise.  Fast
 * after the first call on an object (see tag). */
lipc_stream *lipc_stream_check(lua_State *L, int idx);

/* Probe the kernel once (RWF_NOWAIT, RWF_NOSIGNAL on pipes) and draw the
 * identity tag; every opener of a stream class calls it first. */
void lipc_stream_init(void);

/* Make room in s's read-ahead buffer for at least extra more bytes after
 * the unread ones: 0 or ENOMEM. */
int lipc_stream_reserve(lipc_stream *s, size_t extra);

/* Start w (csrc/core.h, "the one wait path") for a blocking call on s
 * with the timeout at tidx, running try with w->p = s.  The one rule for
 * "nothing ready" of every stream and socket call: a timeout - 0 with
 * nothing ready included - ends in nil, "timeout", ETIMEDOUT (or what
 * w->stop makes of it, e.g. the bytes written so far), never EAGAIN; and
 * a stream in nonblocking mode (setnonblock(true), nonblock = true)
 * called without a timeout is called with timeout 0. */
void lipc_stream_wait(lua_State *L, lipc_wait *w, lipc_stream *s, int tidx, lipc_try_fn try);

/* "read", "write" or "rw". */
const char *lipc_stream_dirname(int dirs);

/* Push a new closed lipc.pipe userdata (csrc/pipe.c); put a descriptor
 * in it with lipc_pipe_set once it exists. */
lipc_stream *lipc_pipe_new(lua_State *L);
/* Hand fd (owned from now on) to the pipe end s made by lipc_pipe_new,
 * with its directions; marks it open. */
void lipc_pipe_set(lipc_stream *s, int fd, int dirs);

#endif
