/*
 * stream.c - the byte-stream engine of stream.h: read, write, lines,
 * setnonblock, tofile for every descriptor that carries a byte stream
 * (pipe and FIFO ends of csrc/pipe.c, stream sockets and received
 * descriptors of csrc/socket.c), and lipc_stream_run, which puts those
 * calls and the socket calls on the one wait path (csrc/core.h).
 *
 * Every call that can wait is a try function (try_read, try_write) run by
 * lipc_run; its progress lives in w->acc or in the read-ahead buffer, so
 * it restarts after any wait, and inside a task it yields.
 *
 * Hot path: with no timeout, on the main thread, a read or write is one
 * plain system call (lipc_stream_run makes the wait record only when it
 * would block or was interrupted).  Writes use pwritev2(RWF_NOSIGNAL)
 * where the kernel has it (Linux 6.18+) so a closed reader gives EPIPE
 * without SIGPIPE in one call; older kernels fall back to
 * lipc_write_nosigpipe (SIGPIPE blocked around the write).  With a
 * timeout, reads and writes try RWF_NOWAIT first and wait for readiness
 * only when nothing is ready.
 */
#include "stream.h"
#include "codec.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif
#ifndef RWF_NOSIGNAL
#define RWF_NOSIGNAL 0x00000100
#endif

/* Kernel features probed once at load: 1 when supported on pipes. */
static int have_nosignal = 0;
static int have_nowait = 0;

/* Most bytes one read(n) asks the kernel for (the rest on the next call). */
#define READ_MAX (1u << 20)
/* Reads of at most this many bytes use a buffer on the C stack. */
#define STACK_READ 8192
/* Read-ahead chunk for lines and "l". */
#define AHEAD 4096

/* ---- the stream core --------------------------------------------------- */

/* Free the read-ahead buffer and close the descriptor. */
int lipc_stream_release(lipc_stream *s) {
  free(s->buf);
  s->buf = NULL;
  s->off = s->len = s->cap = 0;
  int err = 0;
  if (s->h.fd >= 0 && close(s->h.fd) != 0) err = errno;
  s->h.fd = -1;
  return err == EINTR ? 0 : err;
}

/* The stream classes (lipc_stream_register): a handle whose class is one
 * of them starts with lipc_stream. */
#define MAX_STREAM_CLASSES 8
static const lipc_class *stream_classes[MAX_STREAM_CLASSES];

/* 1 when c is a registered stream class (pointer comparisons only: c may
 * be any bytes of a userdata that merely carries a stream metatable). */
static int is_stream_class(const lipc_class *c) {
  for (int i = 0; i < MAX_STREAM_CLASSES && stream_classes[i]; i++)
    if (stream_classes[i] == c) return 1;
  return 0;
}

/* The open stream at idx; raises otherwise: core.c's class check (the
 * class pointer stamped at creation, never the metatable) for any stream
 * class. */
lipc_stream *lipc_stream_check(lua_State *L, int idx) {
  lipc_stream *s = lua_touserdata(L, idx);
  if (s == NULL || lua_rawlen(L, idx) < sizeof(lipc_stream) || !is_stream_class(s->h.cls))
    luaL_typeerror(L, idx, "lipc stream");
  if (!s->h.open) lipc_closed_error(L, s->h.cls);
  if (s->main == NULL) lipc_stream_attach(L, s);
  return s;
}

/* Register the stream class cls: the stream methods plus extra (may be
 * NULL). */
void lipc_stream_register(lua_State *L, const lipc_class *cls, const luaL_Reg *extra) {
  int k = 0;
  while (k < MAX_STREAM_CLASSES - 1 && stream_classes[k] && stream_classes[k] != cls) k++;
  stream_classes[k] = cls;
  luaL_Reg all[64];
  size_t n = 0;
  for (const luaL_Reg *r = lipc_stream_methods; r->name && n < 63; r++) all[n++] = *r;
  for (const luaL_Reg *r = extra; r && r->name && n < 63; r++) all[n++] = *r;
  all[n].name = NULL;
  all[n].func = NULL;
  lipc_register(L, cls, all);
}

void lipc_stream_attach(lua_State *L, lipc_stream *s) {
  s->main = lipc_main_thread(L);
}

/* See stream.h (out of line: the hot path stays small). */
__attribute__((noinline)) int lipc_stream_run_wait(lua_State *L, lipc_wait *w, lipc_stream *s, int tidx, int hot, lua_Hook hook) {
  lipc_try_fn try = w->try;
  lipc_stop_fn stop = w->stop;
  const char *call = w->call;
  lua_Integer acc0 = w->acc[0], acc1 = w->acc[1];
  int absent = lua_isnoneornil(L, tidx);
  lipc_wait_init(L, w, absent ? 0 : tidx, try);
  if (hot) w->d.hook = hook;
  else if (absent && s->nonblock) lipc_deadline_secs(L, 0, &w->d);  /* nothing ready: as timeout 0 */
  w->stop = stop;
  w->call = call;
  w->acc[0] = acc0;
  w->acc[1] = acc1;
  w->p = s;
  return lipc_run(L, w);
}

/* The direction of a stream as text. */
const char *lipc_stream_dirname(int dirs) {
  switch (dirs) {
    case LIPC_STREAM_READ: return "read";
    case LIPC_STREAM_WRITE: return "write";
    default: return "rw";
  }
}

/* One read of at most n bytes; nowait makes it nonblocking for this call.
 * Returns bytes, 0 at EOF, -1 with errno, or -2 when this file cannot be
 * read nonblocking per call (the caller polls first). */
static ssize_t raw_read(lipc_stream *s, void *p, size_t n, int nowait) {
  if (!nowait && !s->socket) return read(s->h.fd, p, n);
  if (s->socket) return recv(s->h.fd, p, n, nowait ? MSG_DONTWAIT : 0);
  /* never trust the descriptor's O_NONBLOCK: a dup sharing its open file
   * description (or another process) can clear it under us */
  if (!have_nowait) { errno = EOPNOTSUPP; return -2; }
  struct iovec v = { p, n };
  ssize_t r = preadv2(s->h.fd, &v, 1, -1, RWF_NOWAIT);
  if (r >= 0 || errno != EOPNOTSUPP) return r;
  return -2;  /* this file cannot: the caller polls first */
}

/* One write of at most n bytes without SIGPIPE, nonblocking for this
 * call when nowait.  Bytes, -1 with errno, or -2 as raw_read. */
static ssize_t raw_write(lipc_stream *s, const void *p, size_t n, int nowait) {
  if (s->socket) {
    return send(s->h.fd, p, n, MSG_NOSIGNAL | (nowait ? MSG_DONTWAIT : 0));
  }
  if (nowait) {  /* per call, whatever O_NONBLOCK the description has now */
    if (!have_nowait) { errno = EOPNOTSUPP; return -2; }
    ssize_t r;
    if (have_nosignal) {
      struct iovec v = { (void *)p, n };
      r = pwritev2(s->h.fd, &v, 1, -1, RWF_NOSIGNAL | RWF_NOWAIT);
    } else {
      r = lipc_pwrite_nosigpipe(s->h.fd, p, n, RWF_NOWAIT);  /* never the blocking write below */
    }
    if (r >= 0 || errno != EOPNOTSUPP) return r;
    return -2;  /* this file cannot: the caller polls first */
  }
  if (have_nosignal) {
    struct iovec v = { (void *)p, n };
    ssize_t r = pwritev2(s->h.fd, &v, 1, -1, RWF_NOSIGNAL);
    if (r >= 0 || (errno != EOPNOTSUPP && errno != EINVAL && errno != ESPIPE)) return r;
  }
  return lipc_write_nosigpipe(s->h.fd, p, n);
}

/* 1 when fd polls ready for events right now (a zero-timeout poll: no
 * wait), for a file that has no per-call nonblocking read or write. */
static int ready_now(int fd, short events) {
  struct pollfd p = { .fd = fd, .events = events, .revents = 0 };
  return poll(&p, 1, 0) > 0;
}

static ssize_t stream_read_wait(lipc_stream *s, lipc_wait *w, void *p, size_t n);

/* The read of a try on s (see core.h, "the one wait path"): at most n
 * bytes into p.  A plain blocking read when w may block and has no
 * deadline (the hot path: one system call); otherwise one that never
 * blocks.  Returns bytes (0 at EOF) or -1 with errno; after EAGAIN w says
 * what to wait for. */
static inline ssize_t stream_read(lipc_stream *s, lipc_wait *w, void *p, size_t n) {
  if (w->block && w->d.forever) {
    ssize_t r = s->socket ? recv(s->h.fd, p, n, 0) : read(s->h.fd, p, n);
    if (r >= 0 || errno != EAGAIN) return r;
  }
  return stream_read_wait(s, w, p, n);
}

/* The rest of stream_read: a read that must not block, or EAGAIN. */
static ssize_t stream_read_wait(lipc_stream *s, lipc_wait *w, void *p, size_t n) {
  ssize_t r = -1;
  errno = EAGAIN;
  if (!(w->block && w->d.forever)) {
    int plain = 0;
    if (w->tries >= 3 && !s->nonblock && !s->socket) {
      /* polled ready three times yet RWF_NOWAIT still says EAGAIN: on a
       * pipe that is real (another reader won), on other files the flag
       * may never succeed: read plainly once the descriptor polls ready */
      struct stat st;
      plain = fstat(s->h.fd, &st) != 0 || !S_ISFIFO(st.st_mode);
    }
    r = plain ? -2 : raw_read(s, p, n, 1);
    if (r == -2) {
      /* no per-call nonblocking read for this file: read plainly only
       * when it polls readable now */
      if (ready_now(s->h.fd, POLLIN)) r = raw_read(s, p, n, 0);
      else { r = -1; errno = EAGAIN; }
    }
  }
  if (r < 0 && errno == EAGAIN) {
    /* also a descriptor made nonblocking behind lipc's back: wait for it */
    w->fd = s->h.fd;
    w->events = POLLIN;
  }
  return r;
}

/* Make room for at least extra more bytes after the unread ones. */
int lipc_stream_reserve(lipc_stream *s, size_t extra) {
  if (s->off > 0 && s->len > 0 && s->off + s->len + extra > s->cap) {
    memmove(s->buf, s->buf + s->off, s->len);
    s->off = 0;
  } else if (s->len == 0) {
    s->off = 0;
  }
  if (s->off + s->len + extra <= s->cap) return 0;
  size_t cap = s->cap ? s->cap : AHEAD;
  while (cap < s->off + s->len + extra) cap *= 2;
  char *nb = realloc(s->buf, cap);
  if (nb == NULL) return ENOMEM;
  s->buf = nb;
  s->cap = cap;
  return 0;
}

/* Make the empty read-ahead buffer at least size bytes (no doubling: a
 * big read uses it as scratch space). */
static int scratch_reserve(lipc_stream *s, size_t size) {
  s->off = 0;
  if (s->cap >= size) return 0;
  char *nb = malloc(size);
  if (nb == NULL) return ENOMEM;
  free(s->buf);
  s->buf = nb;
  s->cap = size;
  return 0;
}

/* Error return of a stream call: timeout or the error triple. */
static int stream_fail(lua_State *L, lipc_stream *s, int err, const char *call) {
  return lipc_fail(L, err, call, s->h.cls->kind);
}

/* What a read try does (w->acc[0]): a size >= 0 (read(n)), or one of: */
enum { READ_ALL = -1, READ_LINE = -2, READ_LINE_NL = -3,
       LINES_LINE = -4, LINES_LINE_NL = -5 };  /* the lines() iterator: raises */

/* The end of a read that failed with err (also its w->stop): the timeout
 * or the error triple; the lines() iterator raises it instead. */
static int read_stop(lua_State *L, lipc_wait *w, int err) {
  lipc_stream *s = w->p;
  stream_fail(L, s, err, "read");
  if (w->acc[0] <= LINES_LINE) return luaL_error(L, "%s", lua_tostring(L, -2));
  return 3;
}

/* After stream_read said -1: wait, retry after EINTR, or fail. */
static int read_failed(lua_State *L, lipc_wait *w) {
  int err = errno;
  if (err == EAGAIN) return LIPC_AGAIN;
  if (err == EINTR) return LIPC_EINTR;
  return read_stop(L, w, err);
}

/* read(n): up to n bytes, nil at EOF. */
static int read_n(lua_State *L, lipc_wait *w, lipc_stream *s, size_t n) {
  if (n == 0) { lua_pushliteral(L, ""); return 1; }
  if (s->len > 0) {
    size_t k = n < s->len ? n : s->len;
    lua_pushlstring(L, s->buf + s->off, k);
    s->off += k;
    s->len -= k;
    return 1;
  }
  ssize_t got;
  if (n <= STACK_READ) {
    char tmp[STACK_READ];
    got = stream_read(s, w, tmp, n);
    if (got > 0) { lua_pushlstring(L, tmp, (size_t)got); return 1; }
    if (got == 0) { lua_pushnil(L); return 1; }
    return read_failed(L, w);
  }
  if (n > READ_MAX) n = READ_MAX;
  if (scratch_reserve(s, n + 4096)) return luaL_error(L, "not enough memory");
  /* The bytes are copied twice: by the kernel from the pipe's pages into
   * p, then by lua_pushlstring into the new string.  Both copies (rep
   * movsb) are up to 16 times slower when the destination is a few bytes
   * past the source mod 4096 (AMD Zen: 8 bytes), and fastest when they
   * agree mod 32.  Lua puts a string's bytes 24 bytes into a 16-aligned
   * block, so they cannot both be fast: p is 64-aligned (the page copy is
   * fast) and about half a page before where the last string's bytes
   * landed, mod 4096 (the allocator mostly hands the same block back), so
   * the second copy stays far from the slow distances. */
  uintptr_t want = ((uintptr_t)(s->align ? s->align : 24) + 2048) & 4032;
  char *p = s->buf + ((want - (uintptr_t)s->buf) & 4095);
  got = stream_read(s, w, p, n);
  if (got < 0) return read_failed(L, w);
  if (got == 0) { lua_pushnil(L); return 1; }
  lua_pushlstring(L, p, (size_t)got);
  s->align = (unsigned)((uintptr_t)lua_tostring(L, -1) & 4095) | 4096;
  return 1;
}

/* read("a"): everything up to EOF ("" if none).  The bytes gather in the
 * read-ahead buffer, so a wait keeps them, and a timeout or an error
 * leaves them there for the next read. */
static int read_all(lua_State *L, lipc_wait *w, lipc_stream *s) {
  for (;;) {
    if (lipc_stream_reserve(s, 65536)) return luaL_error(L, "not enough memory");
    ssize_t got = stream_read(s, w, s->buf + s->off + s->len, s->cap - s->off - s->len);
    if (got < 0) return read_failed(L, w);
    if (got == 0) break;
    s->len += (size_t)got;
    w->tries = 0;
  }
  lua_pushlstring(L, s->buf + s->off, s->len);
  s->off = s->len = 0;
  if (s->cap > READ_MAX + 4096) {  /* do not keep a big file's worth */
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
  }
  return 1;
}

/* read("l") / read("L"): one line from the read-ahead buffer; nil at EOF. */
static int read_line(lua_State *L, lipc_wait *w, lipc_stream *s, int keepnl) {
  size_t scanned = 0;
  for (;;) {
    if (s->len > scanned) {
      char *start = s->buf + s->off;
      char *nl = memchr(start + scanned, '\n', s->len - scanned);
      if (nl != NULL) {
        size_t k = (size_t)(nl - start) + 1;
        lua_pushlstring(L, start, keepnl ? k : k - 1);
        s->off += k;
        s->len -= k;
        return 1;
      }
      scanned = s->len;
    }
    if (lipc_stream_reserve(s, AHEAD)) return luaL_error(L, "not enough memory");
    ssize_t got = stream_read(s, w, s->buf + s->off + s->len, s->cap - s->off - s->len);
    if (got < 0) return read_failed(L, w);
    if (got == 0) {
      if (s->len == 0) { lua_pushnil(L); return 1; }
      lua_pushlstring(L, s->buf + s->off, s->len);
      s->off = s->len = 0;
      return 1;
    }
    s->len += (size_t)got;
    w->tries = 0;
  }
}

/* try_read but its hot path. */
static __attribute__((noinline)) int try_read_more(lua_State *L, lipc_wait *w) {
  lipc_stream *s = w->p;
  lua_Integer what = w->acc[0];
  if (what >= 0) return read_n(L, w, s, (size_t)what);
  if (what == READ_ALL) return read_all(L, w, s);
  return read_line(L, w, s, what == READ_LINE_NL || what == LINES_LINE_NL);
}

/* The try of read and of the lines() iterator: its progress is in the
 * read-ahead buffer of s (w->p), so it restarts after any wait.  Inline:
 * the hot path (read(n) of at most STACK_READ bytes, nothing read ahead)
 * is one read(2) into the caller's stack and one copy into Lua. */
static inline int try_read(lua_State *L, lipc_wait *w) __attribute__((always_inline));
static inline int try_read(lua_State *L, lipc_wait *w) {
  lipc_stream *s = w->p;
  lua_Integer what = w->acc[0];
  if (what > 0 && what <= STACK_READ && s->len == 0) {
    char tmp[STACK_READ];
    ssize_t got = stream_read(s, w, tmp, (size_t)what);
    if (got > 0) { lua_pushlstring(L, tmp, (size_t)got); return 1; }
    if (got == 0) { lua_pushnil(L); return 1; }
    return read_failed(L, w);
  }
  return try_read_more(L, w);
}

/* Raise the wrong-direction error of check_dir. */
static void dir_error(lua_State *L, lipc_stream *s, int dir) {
  luaL_error(L, "attempt to %s a %s-only %s", dir == LIPC_STREAM_READ ? "read from" : "write to",
             lipc_stream_dirname(s->dirs), s->h.cls->name);
}

/* Check that s may be used in direction dir. */
static inline void check_dir(lua_State *L, lipc_stream *s, int dir) {
  if (s->dirs != 0 && !(s->dirs & dir)) dir_error(L, s, dir);
}

/* s:read([n | "a" | "l" | "L"], timeout) */
static int lstream_read(lua_State *L) {
  lipc_stream *s = lipc_stream_check(L, 1);
  lipc_wait w;
  w.stop = read_stop;
  w.call = "read";
  w.acc[1] = 0;
  check_dir(L, s, LIPC_STREAM_READ);
  int t = lua_type(L, 2);
  if (t == LUA_TNUMBER) {
    int isint = 0;
    lua_Integer n = lua_tointegerx(L, 2, &isint);
    if (!isint || n < 0) n = (lua_Integer)lipc_checksize(L, 2);  /* raises */
    w.acc[0] = n;
    return lipc_stream_run(L, &w, s, 3, try_read);
  }
  const char *fmt = t <= LUA_TNIL ? "l" : luaL_checkstring(L, 2);
  if (*fmt == '*') fmt++;
  if (fmt[0] != '\0' && fmt[1] == '\0') {
    switch (fmt[0]) {
      case 'a': w.acc[0] = READ_ALL; return lipc_stream_run(L, &w, s, 3, try_read);
      case 'l': w.acc[0] = READ_LINE; return lipc_stream_run(L, &w, s, 3, try_read);
      case 'L': w.acc[0] = READ_LINE_NL; return lipc_stream_run(L, &w, s, 3, try_read);
    }
  }
  return luaL_argerror(L, 2, "invalid format (expected a size, \"a\", \"l\" or \"L\")");
}

/* The end of a write that did not finish (its w->stop): the bytes written
 * so far, or the timeout / error triple when there are none. */
static int write_stop(lua_State *L, lipc_wait *w, int err) {
  if (w->acc[0] > 0) { lua_pushinteger(L, w->acc[0]); return 1; }
  return stream_fail(L, w->p, err, "write");
}

/* One write of p[0..n) on s without SIGPIPE: blocking (the hot path, one
 * pwritev2(RWF_NOSIGNAL) writing everything), or never blocking. Bytes, or
 * -1 with errno (EAGAIN: nothing fits now). */
static ssize_t write_once(lipc_stream *s, const char *p, size_t n, int blocking) {
  ssize_t r;
  if (blocking && have_nosignal && !s->socket) {
    struct iovec v = { (void *)p, n };
    r = pwritev2(s->h.fd, &v, 1, -1, RWF_NOSIGNAL);
    if (r < 0 && (errno == EOPNOTSUPP || errno == EINVAL || errno == ESPIPE))
      r = lipc_write_nosigpipe(s->h.fd, p, n);  /* not for this file */
    return r;
  }
  if (blocking) return raw_write(s, p, n, 0);
  r = raw_write(s, p, n, 1);
  if (r == -2) {
    /* no per-call nonblocking write for this file: when it polls writable,
     * write at most PIPE_BUF bytes, which a pipe that polls writable takes
     * without blocking (all of it could block past the deadline) */
    if (ready_now(s->h.fd, POLLOUT)) r = raw_write(s, p, n < PIPE_BUF ? n : PIPE_BUF, 0);
    else { r = -1; errno = EAGAIN; }
  }
  return r;
}

/* The try of write: the data is the string argument 2, whose bytes
 * (which never move while it is on the stack) are at w->acc[1]; the bytes
 * written so far are in w->acc[0].  Blocking, it writes everything;
 * otherwise what fits until it would block. */
static int try_write(lua_State *L, lipc_wait *w) {
  lipc_stream *s = w->p;
  size_t n = lua_rawlen(L, 2);
  const char *p = (const char *)(intptr_t)w->acc[1];
  size_t done = (size_t)w->acc[0];
  int blocking = w->block && w->d.forever;
  for (;;) {
    ssize_t r;
    r = write_once(s, p + done, n - done, blocking);
    if (r > 0 || (r == 0 && done == n)) {
      done += (size_t)r;
      w->acc[0] = (lua_Integer)done;
      w->tries = 0;  /* progress: the next EAGAIN waits without a backoff */
      if (done >= n) { lua_pushinteger(L, (lua_Integer)done); return 1; }
      /* a short blocking write: a signal came; after Ctrl-C lipc_run
       * returns the count (write_stop), otherwise the rest is written */
      if (blocking) return LIPC_EINTR;
      continue;
    }
    int err = r < 0 ? errno : EAGAIN;
    if (err == EINTR) return LIPC_EINTR;
    if (err == EAGAIN) {
      /* also a descriptor made nonblocking behind lipc's back */
      w->fd = s->h.fd;
      w->events = POLLOUT;
      return LIPC_AGAIN;
    }
    if (done > 0) { lua_pushinteger(L, (lua_Integer)done); return 1; }
    return stream_fail(L, s, err, "write");
  }
}

/* s:write(data, timeout) -> bytes written */
static int lstream_write(lua_State *L) {
  lipc_stream *s = lipc_stream_check(L, 1);
  size_t n;
  const char *p = lua_tolstring(L, 2, &n);
  if (p == NULL) p = luaL_checklstring(L, 2, &n);  /* raises */
  lipc_wait w;
  w.stop = write_stop;
  w.call = "write";
  w.acc[0] = 0;
  w.acc[1] = (lua_Integer)(intptr_t)p;
  check_dir(L, s, LIPC_STREAM_WRITE);
  return lipc_stream_run(L, &w, s, 3, try_write);
}

/* ---- values as 4-byte-length frames (the channel's stream framing) ----- */

/* sendv's encoding: the frame (4-byte big-endian length, then the
 * ipc.encode bytes), used within one call.  Before a try waits, the frame
 * moves into a Lua string at argument 2 (a task may run another sendv
 * while this one waits), so no wait ever depends on this buffer. */
static LIPC_TLS lipc_buf sendv_buf;  /* per thread: states in several threads never share it */
static LIPC_TLS size_t sendv_len;

/* The end of a sendv that did not finish (its w->stop): the error and,
 * when part of the frame went out, the bytes written (5th result). */
static int sendv_stop(lua_State *L, lipc_wait *w, int err) {
  stream_fail(L, w->p, err, "write");
  if (w->acc[0] > 0) {
    lua_pushnil(L);
    lua_pushinteger(L, w->acc[0]);
    return 5;
  }
  return 3;
}

/* The try of sendv: the frame's bytes at w->acc[1] (sendv_buf, or the Lua
 * string at argument 2 once a wait came), w->acc[0] of them written. */
static int try_sendv(lua_State *L, lipc_wait *w) {
  lipc_stream *s = w->p;
  const char *p = (const char *)(intptr_t)w->acc[1];
  size_t n = p == sendv_buf.p ? sendv_len : lua_rawlen(L, 2);
  size_t done = (size_t)w->acc[0];
  int blocking = w->block && w->d.forever;
  for (;;) {
    ssize_t r = write_once(s, p + done, n - done, blocking);
    int ret;
    if (r > 0) {
      done += (size_t)r;
      w->acc[0] = (lua_Integer)done;
      w->tries = 0;
      if (done >= n) { lua_pushboolean(L, 1); return 1; }
      if (!blocking) continue;
      ret = LIPC_EINTR;  /* a short blocking write: a signal came */
    } else {
      int err = r < 0 ? errno : EAGAIN;
      if (err == EINTR) ret = LIPC_EINTR;
      else if (err == EAGAIN) {
        w->fd = s->h.fd;
        w->events = POLLOUT;
        ret = LIPC_AGAIN;
      } else {
        return sendv_stop(L, w, err);
      }
    }
    if (p == sendv_buf.p) {  /* about to wait: keep the frame in a Lua string */
      lua_pushlstring(L, p, n);
      w->acc[1] = (lua_Integer)(intptr_t)lua_tostring(L, -1);
      lua_replace(L, 2);
      lipc_buf_trim(&sendv_buf);
    }
    return ret;
  }
}

/* s:sendv(v [, timeout [, limit]]) -> true; or nil, message, errno, size
 * (size: the encoding is longer than limit, nothing written); or nil,
 * message, errno, nil, written (part of the frame went out: the stream
 * no longer holds whole frames). */
static int lstream_sendv(lua_State *L) {
  lipc_stream *s = lipc_stream_check(L, 1);
  check_dir(L, s, LIPC_STREAM_WRITE);
  lua_Integer limit = luaL_optinteger(L, 4, 0x7fffffff);
  size_t n = lipc_encode_to(L, 2, &sendv_buf);
  if ((lua_Integer)n > limit || n > 0xffffffffu) {
    lipc_buf_trim(&sendv_buf);
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushinteger(L, (lua_Integer)n);
    return 4;
  }
  if (sendv_buf.cap < n + 4) {
    char *nb = realloc(sendv_buf.p, n + 4);
    if (nb == NULL) return luaL_error(L, "not enough memory");
    sendv_buf.p = nb;
    sendv_buf.cap = n + 4;
  }
  memmove(sendv_buf.p + 4, sendv_buf.p, n);
  unsigned char *h = (unsigned char *)sendv_buf.p;
  h[0] = (unsigned char)(n >> 24); h[1] = (unsigned char)(n >> 16);
  h[2] = (unsigned char)(n >> 8); h[3] = (unsigned char)n;
  sendv_len = n + 4;
  lipc_wait w;
  w.stop = sendv_stop;
  w.call = "write";
  w.acc[0] = 0;
  w.acc[1] = (lua_Integer)(intptr_t)sendv_buf.p;
  int r = lipc_stream_run(L, &w, s, 3, try_sendv);
  if (w.acc[1] == (lua_Integer)(intptr_t)sendv_buf.p) lipc_buf_trim(&sendv_buf);
  return r;
}

/* The try of recvv: the next frame from the read-ahead buffer of s (w->p),
 * reading more into it until a whole frame is there; a wait or a timeout
 * keeps every byte in that buffer.  w->acc[0] is the frame limit. */
static int try_recvv(lua_State *L, lipc_wait *w) {
  lipc_stream *s = w->p;
  size_t limit = (size_t)w->acc[0];
  for (;;) {
    size_t need = 4;
    if (s->len >= 4) {
      const unsigned char *h = (const unsigned char *)s->buf + s->off;
      size_t size = ((size_t)h[0] << 24) | ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3];
      if (size > limit) {
        lua_pushnil(L);
        lua_pushliteral(L, "toobig");
        lua_pushnil(L);
        lua_pushinteger(L, (lua_Integer)size);
        return 4;
      }
      if (s->len >= 4 + size) {
        size_t at;
        const char *err = lipc_decode_from(L, s->buf + s->off + 4, size, &at);
        s->off += 4 + size;
        s->len -= 4 + size;
        if (s->len == 0) s->off = 0;
        if (err == NULL) return 1;
        lua_pushnil(L);
        lua_pushliteral(L, "malformed");
        lua_pushnil(L);
        lua_pushnil(L);
        lua_pushfstring(L, "ipc.decode: %s (at byte %I)", err, (lua_Integer)at);  /* as ipc.decode */
        return 5;
      }
      need = 4 + size;
    }
    size_t want = need - s->len < AHEAD ? AHEAD : need - s->len;
    if (lipc_stream_reserve(s, want)) return luaL_error(L, "not enough memory");
    ssize_t got = stream_read(s, w, s->buf + s->off + s->len, s->cap - s->off - s->len);
    if (got < 0) return read_failed(L, w);
    if (got == 0) {
      lua_pushnil(L);
      if (s->len == 0) lua_pushliteral(L, "closed");
      else lua_pushliteral(L, "partial");
      return 2;
    }
    s->len += (size_t)got;
    w->tries = 0;
  }
}

/* s:recvv([timeout [, limit]]) -> the next frame's value (a lone nil for
 * an encoded nil); or nil, "closed" at the end of the stream; nil,
 * "partial" at the end of the stream inside a frame; nil, "toobig", nil,
 * size for a frame longer than limit (left unread); nil, "malformed",
 * nil, nil, message for a frame that does not decode (skipped); or nil,
 * message, errno ("timeout" and ETIMEDOUT: the bytes stay buffered). */
static int lstream_recvv(lua_State *L) {
  lipc_stream *s = lipc_stream_check(L, 1);
  check_dir(L, s, LIPC_STREAM_READ);
  lua_Integer limit = luaL_optinteger(L, 3, 0x7fffffff);
  lipc_wait w;
  w.stop = read_stop;
  w.call = "read";
  w.acc[0] = limit < 0 ? 0 : limit;
  w.acc[1] = 0;
  return lipc_stream_run(L, &w, s, 2, try_recvv);
}

/* s:framed() -> true when a whole 4-byte-length frame (recvv's) is in the
 * read-ahead buffer (poll cannot see it). */
static int lstream_framed(lua_State *L) {
  lipc_stream *s = lipc_stream_check(L, 1);
  int ok = 0;
  if (s->len >= 4) {
    const unsigned char *h = (const unsigned char *)s->buf + s->off;
    size_t size = ((size_t)h[0] << 24) | ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3];
    ok = s->len >= 4 + size;
  }
  lua_pushboolean(L, ok);
  return 1;
}

/* The iterator of s:lines(): the next line or nil; raises on error. */
static int lines_next(lua_State *L) {
  lipc_stream *s = lipc_stream_check(L, lua_upvalueindex(1));
  double t = lua_tonumber(L, lua_upvalueindex(2));
  lipc_wait w;
  lipc_wait_init(L, &w, 0, try_read);
  if (t >= 0 || s->nonblock) lipc_deadline_secs(L, t >= 0 ? t : 0, &w.d);  /* as lipc_stream_run */
  w.p = s;
  w.stop = read_stop;
  w.acc[0] = lua_toboolean(L, lua_upvalueindex(3)) ? LINES_LINE_NL : LINES_LINE;
  return lipc_run(L, &w);
}

/* s:lines([fmt], [timeout]) -> iterator over lines ("l": without "\n",
 * "L": with it), fmt and timeout in read's order; s:lines(timeout, fmt) too. */
static int lstream_lines(lua_State *L) {
  lipc_stream *s = lipc_stream_check(L, 1);
  if (lua_type(L, 2) == LUA_TSTRING) {  /* (fmt, timeout) -> (timeout, fmt) */
    lua_settop(L, 3);
    lua_rotate(L, 2, 1);
  }
  lipc_deadline d;
  lipc_deadline_init(L, 2, &d);
  check_dir(L, s, LIPC_STREAM_READ);
  double t = lua_isnoneornil(L, 2) ? -1 : lua_tonumber(L, 2);
  int keep = 0;
  if (!lua_isnoneornil(L, 3)) {
    const char *f = luaL_checkstring(L, 3);
    if (strcmp(f, "L") == 0) keep = 1;
    else if (strcmp(f, "l") != 0) return luaL_argerror(L, 3, "expected \"l\" or \"L\"");
  }
  lua_settop(L, 1);
  lua_pushnumber(L, t);
  lua_pushboolean(L, keep);
  lua_pushcclosure(L, lines_next, 3);
  return 1;
}

/* s:setnonblock(bool) -> true */
static int lstream_setnonblock(lua_State *L) {
  lipc_stream *s = lipc_stream_check(L, 1);
  luaL_checktype(L, 2, LUA_TBOOLEAN);
  int on = lua_toboolean(L, 2);
  int fl = fcntl(s->h.fd, F_GETFL);
  if (fl < 0) return lipc_error(L, errno, "fcntl", s->h.cls->kind);
  int nfl = on || s->keep_nonblock ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  if (nfl != fl && fcntl(s->h.fd, F_SETFL, nfl) != 0) return lipc_error(L, errno, "fcntl", s->h.cls->kind);
  s->nonblock = on;
  lua_pushboolean(L, 1);
  return 1;
}

/* The closef of a file made by tofile. */
static int tofile_close(lua_State *L) {
  luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
  int ok = fclose(p->f) == 0;
  int err = errno;
  p->f = NULL;
  return luaL_fileresult(L, ok, (errno = err, NULL));
}

/* s:tofile() -> a Lua io file on a duplicate of the descriptor. */
static int lstream_tofile(lua_State *L) {
  lipc_stream *s = lipc_stream_check(L, 1);
  const char *mode = s->dirs == LIPC_STREAM_READ ? "r" : s->dirs == LIPC_STREAM_WRITE ? "w" : "r+";
  luaL_Stream *p = (luaL_Stream *)lua_newuserdatauv(L, sizeof(luaL_Stream), 0);
  p->f = NULL;
  p->closef = NULL;  /* closed for io until the FILE exists */
  if (luaL_getmetatable(L, LUA_FILEHANDLE) != LUA_TTABLE)
    return luaL_error(L, "tofile needs the io library");
  lua_setmetatable(L, -2);
  int fd = fcntl(s->h.fd, F_DUPFD_CLOEXEC, 3);
  if (fd < 0) return lipc_error(L, errno, "dup", s->h.cls->kind);
  p->f = fdopen(fd, mode);
  if (p->f == NULL) {
    int err = errno;
    close(fd);
    return lipc_error(L, err, "fdopen", s->h.cls->kind);
  }
  p->closef = tofile_close;
  return 1;
}

/* s:direction(): "read", "write" or "rw" (both ways, or not known). */
static int lstream_direction(lua_State *L) {
  lipc_stream *s = lipc_stream_check(L, 1);
  lua_pushstring(L, lipc_stream_dirname(s->dirs));
  return 1;
}

const luaL_Reg lipc_stream_methods[] = {
  {"direction", lstream_direction},
  {"read", lstream_read},
  {"write", lstream_write},
  {"sendv", lstream_sendv},
  {"recvv", lstream_recvv},
  {"framed", lstream_framed},
  {"lines", lstream_lines},
  {"setnonblock", lstream_setnonblock},
  {"tofile", lstream_tofile},
  {"fileno", lipc_m_fileno},
  {NULL, NULL}
};

/* Probe the kernel's RWF_NOSIGNAL and RWF_NOWAIT support on pipes. */
static void probe(void) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return;
  char c;
  struct iovec v = { &c, 1 };
  have_nowait = preadv2(fds[0], &v, 1, -1, RWF_NOWAIT) < 0 && errno == EAGAIN;
  close(fds[0]);
  c = 'x';
  /* the reader is gone: EPIPE without a signal proves RWF_NOSIGNAL; an
   * unknown flag gives EOPNOTSUPP before any signal could be raised */
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  ssize_t r = pwritev2(fds[1], &v, 1, -1, RWF_NOSIGNAL);
  int err = errno;
  sigset_t pending;
  sigpending(&pending);
  have_nosignal = r < 0 && err == EPIPE && !sigismember(&pending, SIGPIPE);
  if (sigismember(&pending, SIGPIPE) && !sigismember(&old, SIGPIPE)) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {}
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  close(fds[1]);
}

void lipc_stream_init(void) {
  static int probed;
  if (!probed) { probe(); probed = 1; }
}
