/*
 * pipe.c - pipes and FIFOs: ipc.pipe, ipc.mkfifo, ipc.fifo.open, and the
 * byte-stream methods of stream.h (read, write, lines, setnonblock,
 * tofile, direction, fileno) shared with sockets and received descriptors.
 *
 * Hot path: with no timeout a read or write is one plain system call.
 * Writes use pwritev2(RWF_NOSIGNAL) where the kernel has it (Linux 6.18+)
 * so a closed reader gives EPIPE without SIGPIPE in one call; older
 * kernels fall back to lipc_write_nosigpipe (SIGPIPE blocked around the
 * write).  With a timeout, reads and writes try RWF_NOWAIT first and poll
 * only when nothing is ready.
 */
#include "stream.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif
#ifndef RWF_NOSIGNAL
#define RWF_NOSIGNAL 0x00000100
#endif
#ifndef F_GETPIPE_SZ
#define F_GETPIPE_SZ 1032
#define F_SETPIPE_SZ 1031
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

static int pipe_release(lipc_handle *h, int remove_name);
static void pipe_describe(lipc_handle *h, luaL_Buffer *b);

static const lipc_class pipe_class = {
  "lipc.pipe", "pipe", sizeof(lipc_stream), pipe_release, pipe_describe, NULL,
  LIPC_CLASS_STREAM
};

/* What tells one file from another that later takes its path: device and
 * inode, the birth time and the file system's handle (with the inode
 * generation) where there are such: ext4 gives a freed inode number to the
 * next file at once, within the same clock tick. */
#define FILE_HANDLE_MAX 64
typedef struct file_id {
  dev_t dev;
  ino_t ino;
  struct statx_timestamp btime;
  int has_btime;
  int is_fifo;
  unsigned handle_len;  /* 0: none */
  int handle_type;
  unsigned char handle[FILE_HANDLE_MAX];
} file_id;

typedef struct lfifo {
  lipc_handle h;
  char *path;   /* malloc'd */
  file_id id;   /* the FIFO this object names: the path is removed only
                   while it still leads to it */
} lfifo;

static int fifo_release(lipc_handle *h, int remove_name);
static void fifo_describe(lipc_handle *h, luaL_Buffer *b);
static void fifo_audit(lua_State *L, lipc_handle *h);

static const lipc_class fifo_class = {
  "lipc.fifo", "fifo", sizeof(lfifo), fifo_release, fifo_describe, fifo_audit, 0
};

/* ---- the stream core --------------------------------------------------- */

/* Free the read-ahead buffer and close the descriptor. */
int lipc_stream_release(lipc_stream *s) {
  s->tag = 0;
  free(s->buf);
  s->buf = NULL;
  s->off = s->len = s->cap = 0;
  int err = 0;
  if (s->h.fd >= 0 && close(s->h.fd) != 0) err = errno;
  s->h.fd = -1;
  return err == EINTR ? 0 : err;
}

/* The fast identity mark of open streams (lipc_stream.tag): a random
 * nonzero number drawn once per process. */
static uint64_t stream_tag;

/* Draw stream_tag (getrandom, else a mix of clock, pid and addresses). */
static void make_tag(void) {
  uint64_t t = 0;
  if (getrandom(&t, sizeof t, GRND_NONBLOCK) != (ssize_t)sizeof t) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 16) ^
        (uint64_t)(uintptr_t)&ts ^ ((uint64_t)(uintptr_t)&stream_tag << 7);
  }
  stream_tag = t ? t : 0x9e3779b97f4a7c15u;
}

/* The open stream at idx; raises otherwise.
 * The hot path (every read and write) must not pay for a metatable check,
 * which costs ~4 Lua API calls.  Instead a stream that passed the full
 * check once, open, carries stream_tag until lipc_stream_release clears
 * it: then a userdata at least as big as lipc_stream whose tag equals
 * stream_tag is that stream.  Only C code writes userdata bytes, lipc
 * writes the tag only into verified open streams and clears it before the
 * memory can be freed (release runs from close, __close and __gc), and the
 * tag is random: a foreign userdata (even one reusing a freed stream's
 * memory) cannot match; a light userdata has length 0. */
lipc_stream *lipc_stream_check(lua_State *L, int idx) {
  lipc_stream *s = lua_touserdata(L, idx);
  if (s != NULL && lua_rawlen(L, idx) >= sizeof(lipc_stream) && s->tag == stream_tag &&
      s->h.open)
    return s;
  lipc_handle *h = lipc_toany(L, idx);
  if (h == NULL || !(h->cls->flags & LIPC_CLASS_STREAM)) luaL_typeerror(L, idx, "lipc stream");
  if (!h->open) lipc_closed_error(L, h->cls);
  ((lipc_stream *)h)->tag = stream_tag;
  return (lipc_stream *)h;
}

/* The timeout argument 3 of read and write, top being the number of
 * arguments: absent (the common case) without a call, else
 * lipc_deadline_init. */
static void deadline_arg(lua_State *L, int top, lipc_deadline *d) {
  if (top < 3) {
    d->forever = 1;
    d->L = L;
    d->hook = lua_gethook(L);
    return;
  }
  lipc_deadline_init(L, 3, d);
}

/* Release of a pipe end. */
static int pipe_release(lipc_handle *h, int remove_name) {
  (void)remove_name;
  return lipc_stream_release((lipc_stream *)h);
}

/* The direction of a stream as text. */
static const char *dirname_(int dirs) {
  switch (dirs) {
    case LIPC_STREAM_READ: return "read";
    case LIPC_STREAM_WRITE: return "write";
    default: return "rw";
  }
}

/* "fd=5, read" */
static void pipe_describe(lipc_handle *h, luaL_Buffer *b) {
  char tmp[64];
  snprintf(tmp, sizeof tmp, "fd=%d, %s", h->fd, dirname_(((lipc_stream *)h)->dirs));
  luaL_addstring(b, tmp);
}

/* One read of at most n bytes; nowait makes it nonblocking for this call.
 * Returns bytes, 0 at EOF, -1 with errno, or -2 when this file cannot be
 * read nonblocking per call (the caller polls first). */
static ssize_t raw_read(lipc_stream *s, void *p, size_t n, int nowait) {
  if (!nowait && !s->socket) return read(s->h.fd, p, n);
  if (s->socket) return recv(s->h.fd, p, n, nowait ? MSG_DONTWAIT : 0);
  if (s->nonblock) return read(s->h.fd, p, n);
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
  if (nowait && !s->nonblock) {
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

/* Read at most n bytes into p within the deadline.  Sets *got (0 = EOF);
 * returns 0 or an errno value (ETIMEDOUT, EINTR, EAGAIN...). */
static int stream_read(lipc_stream *s, void *p, size_t n, lipc_deadline *d, size_t *got) {
  int nowait = !d->forever;
  int tries = 0;  /* waits so far; ready by poll yet EAGAIN: a competing reader, a
                   * shut-down datagram socket, or a file type where RWF_NOWAIT
                   * never succeeds (then read plainly) */
  for (;;) {
    if (nowait && tries == 3 && !s->nonblock && !s->socket) {
      /* a pipe's EAGAIN is real (another reader won): a plain read would
       * block past the deadline */
      struct stat st;
      if (fstat(s->h.fd, &st) != 0 || !S_ISFIFO(st.st_mode)) nowait = 0;
    }
    ssize_t r = raw_read(s, p, n, nowait);
    if (r >= 0) { *got = (size_t)r; return 0; }
    if (r == -2) {
      /* no per-call nonblocking read for this file: poll, then read */
      int w = lipc_wait_fd(d, s->h.fd, POLLIN);
      if (w) return w;
      r = raw_read(s, p, n, 0);
      if (r >= 0) { *got = (size_t)r; return 0; }
    }
    int err = errno;
    if (err == EINTR) {
      if (lipc_interrupted(d)) return EINTR;
      continue;
    }
    if ((err == EAGAIN || err == EWOULDBLOCK) && !d->forever) {
      /* still EAGAIN after poll said ready: back off, never spin */
      int w = lipc_wait_retry(d, s->h.fd, POLLIN, &tries);
      if (w) return w;
      continue;
    }
    if (err == EWOULDBLOCK) err = EAGAIN;
    return err;
  }
}

/* Write all of p (blocking), or what fits (nonblocking).  Sets *put;
 * returns 0 or an errno value. */
static int stream_write(lipc_stream *s, const char *p, size_t n, lipc_deadline *d, size_t *put) {
  size_t done = 0;
  int nowait = !d->forever;
  int tries = 0;
  while (done < n || n == 0) {
    ssize_t r = raw_write(s, p + done, n - done, nowait);
    if (r == -2) {
      /* no per-call nonblocking write for this file: poll, then write at
       * most PIPE_BUF bytes, which a pipe that polls writable takes without
       * blocking (all of it could block past the deadline) */
      int w = lipc_wait_fd(d, s->h.fd, POLLOUT);
      if (w) { *put = done; return done ? 0 : w; }
      r = raw_write(s, p + done, n - done < PIPE_BUF ? n - done : PIPE_BUF, 0);
    }
    if (r >= 0) {
      done += (size_t)r;
      tries = 0;  /* progress: the next EAGAIN waits without a backoff */
      if (n == 0) break;
      /* a short blocking write: a signal came; Ctrl-C returns to Lua */
      if (done < n && lipc_interrupted(d)) break;
      continue;
    }
    int err = errno;
    if (err == EINTR) {
      if (lipc_interrupted(d)) { *put = done; return done ? 0 : EINTR; }
      continue;
    }
    if (err == EAGAIN || err == EWOULDBLOCK) {
      if (d->forever) { *put = done; return done ? 0 : EAGAIN; }
      /* still EAGAIN after poll said writable: back off, never spin */
      int w = lipc_wait_retry(d, s->h.fd, POLLOUT, &tries);
      if (w) { *put = done; return done ? 0 : w; }
      continue;
    }
    *put = done;
    return done ? 0 : err;
  }
  *put = done;
  return 0;
}

/* Make room for at least extra more bytes after the unread ones. */
static int ahead_reserve(lipc_stream *s, size_t extra) {
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

/* Append the bytes of a failed "a" read to the read-ahead buffer. */
static void ahead_putback(lipc_stream *s, const char *p, size_t n) {
  if (n == 0 || ahead_reserve(s, n) != 0) return;
  memcpy(s->buf + s->off + s->len, p, n);
  s->len += n;
}

/* Error return of a stream call: timeout or the error triple. */
static int stream_fail(lua_State *L, lipc_stream *s, int err, const char *call) {
  return lipc_fail(L, err, call, s->h.cls->kind);
}

/* read(n): up to n bytes, nil at EOF. */
static int read_n(lua_State *L, lipc_stream *s, size_t n, lipc_deadline *d) {
  if (n == 0) { lua_pushliteral(L, ""); return 1; }
  if (s->len > 0) {
    size_t k = n < s->len ? n : s->len;
    lua_pushlstring(L, s->buf + s->off, k);
    s->off += k;
    s->len -= k;
    return 1;
  }
  int err;
  size_t got = 0;
  if (n <= STACK_READ) {
    char tmp[STACK_READ];
    err = stream_read(s, tmp, n, d, &got);
    if (err) return stream_fail(L, s, err, "read");
    if (got == 0) { lua_pushnil(L); return 1; }
    lua_pushlstring(L, tmp, got);
    return 1;
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
  err = stream_read(s, p, n, d, &got);
  if (err) return stream_fail(L, s, err, "read");
  if (got == 0) { lua_pushnil(L); return 1; }
  lua_pushlstring(L, p, got);
  s->align = (unsigned)((uintptr_t)lua_tostring(L, -1) & 4095) | 4096;
  return 1;
}

/* read("a"): everything up to EOF ("" if none). */
static int read_all(lua_State *L, lipc_stream *s, lipc_deadline *d) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (s->len > 0) {
    luaL_addlstring(&b, s->buf + s->off, s->len);
    s->off = s->len = 0;
  }
  int err = 0;
  for (;;) {
    if (err) {
      ahead_putback(s, luaL_buffaddr(&b), luaL_bufflen(&b));
      return stream_fail(L, s, err, "read");
    }
    char *p = luaL_prepbuffsize(&b, 65536);
    size_t got = 0;
    err = stream_read(s, p, 65536, d, &got);
    if (err) continue;
    if (got == 0) break;
    luaL_addsize(&b, got);
  }
  luaL_pushresult(&b);
  return 1;
}

/* read("l") / read("L"): one line from the read-ahead buffer; nil at EOF. */
static int read_line(lua_State *L, lipc_stream *s, lipc_deadline *d, int keepnl) {
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
    if (ahead_reserve(s, AHEAD)) return luaL_error(L, "not enough memory");
    size_t got = 0;
    int err = stream_read(s, s->buf + s->off + s->len, s->cap - s->off - s->len, d, &got);
    if (err) return stream_fail(L, s, err, "read");
    if (got == 0) {
      if (s->len == 0) { lua_pushnil(L); return 1; }
      lua_pushlstring(L, s->buf + s->off, s->len);
      s->off = s->len = 0;
      return 1;
    }
    s->len += got;
  }
}

/* Raise the wrong-direction error of check_dir. */
static void dir_error(lua_State *L, lipc_stream *s, int dir) {
  luaL_error(L, "attempt to %s a %s-only %s", dir == LIPC_STREAM_READ ? "read from" : "write to",
             dirname_(s->dirs), s->h.cls->name);
}

/* Check that s may be used in direction dir. */
static inline void check_dir(lua_State *L, lipc_stream *s, int dir) {
  if (s->dirs != 0 && !(s->dirs & dir)) dir_error(L, s, dir);
}

/* s:read([n | "a" | "l" | "L"], timeout) */
static int lstream_read(lua_State *L) {
  int top = lua_gettop(L);
  lipc_stream *s = lipc_stream_check(L, 1);
  lipc_deadline d;
  deadline_arg(L, top, &d);
  check_dir(L, s, LIPC_STREAM_READ);
  if (top >= 2 && lua_type(L, 2) == LUA_TNUMBER) {
    int isint = 0;
    lua_Integer n = lua_tointegerx(L, 2, &isint);
    if (!isint || n < 0) n = (lua_Integer)lipc_checksize(L, 2);  /* raises */
    if (d.forever && !s->socket && s->len == 0 && n > 0 && n <= STACK_READ) {
      /* the hot path: one read(2) into the stack, one copy into Lua */
      char tmp[STACK_READ];
      ssize_t r = read(s->h.fd, tmp, (size_t)n);
      if (r > 0) { lua_pushlstring(L, tmp, (size_t)r); return 1; }
      if (r == 0) { lua_pushnil(L); return 1; }
      int err = errno;
      if (err != EINTR) return stream_fail(L, s, err == EWOULDBLOCK ? EAGAIN : err, "read");
      if (lipc_interrupted(&d)) return stream_fail(L, s, EINTR, "read");
      /* EINTR: read_n reads again */
    }
    return read_n(L, s, (size_t)n, &d);
  }
  const char *fmt = lua_isnoneornil(L, 2) ? "l" : luaL_checkstring(L, 2);
  if (*fmt == '*') fmt++;
  if (fmt[0] != '\0' && fmt[1] == '\0') {
    switch (fmt[0]) {
      case 'a': return read_all(L, s, &d);
      case 'l': return read_line(L, s, &d, 0);
      case 'L': return read_line(L, s, &d, 1);
    }
  }
  return luaL_argerror(L, 2, "invalid format (expected a size, \"a\", \"l\" or \"L\")");
}

/* s:write(data, timeout) -> bytes written */
static int lstream_write(lua_State *L) {
  int top = lua_gettop(L);
  lipc_stream *s = lipc_stream_check(L, 1);
  size_t n;
  const char *p = lua_tolstring(L, 2, &n);
  if (p == NULL) p = luaL_checklstring(L, 2, &n);  /* raises */
  lipc_deadline d;
  deadline_arg(L, top, &d);
  check_dir(L, s, LIPC_STREAM_WRITE);
  size_t put = 0, done = 0;
  if (d.forever && have_nosignal && !s->socket && n > 0) {
    /* the hot path: one pwritev2(RWF_NOSIGNAL) writing everything */
    struct iovec v = { (void *)p, n };
    ssize_t r = pwritev2(s->h.fd, &v, 1, -1, RWF_NOSIGNAL);
    if (r == (ssize_t)n) { lua_pushinteger(L, r); return 1; }
    if (r > 0) {
      /* short: a signal came; Ctrl-C returns to Lua, else write the rest */
      done = (size_t)r;
      if (lipc_interrupted(&d)) { lua_pushinteger(L, r); return 1; }
    } else if (r < 0) {
      int err = errno;
      if (err == EINTR && lipc_interrupted(&d)) return stream_fail(L, s, EINTR, "write");
      if (err == EWOULDBLOCK) err = EAGAIN;
      if (err != EINTR && err != EOPNOTSUPP && err != EINVAL && err != ESPIPE)
        return stream_fail(L, s, err, "write");
      /* EINTR: again; no RWF_NOSIGNAL for this file: stream_write falls back */
    }
  }
  int err = stream_write(s, p + done, n - done, &d, &put);
  put += done;
  if (err && put == 0) return stream_fail(L, s, err, "write");
  lua_pushinteger(L, (lua_Integer)put);
  return 1;
}

/* The iterator of s:lines(): the next line or nil; raises on error. */
static int lines_next(lua_State *L) {
  lipc_stream *s = lipc_stream_check(L, lua_upvalueindex(1));
  lipc_deadline d;
  lipc_deadline_secs(L, lua_tonumber(L, lua_upvalueindex(2)), &d);
  int n = read_line(L, s, &d, lua_toboolean(L, lua_upvalueindex(3)));
  if (n == 3) return luaL_error(L, "%s", lua_tostring(L, -2));
  return 1;
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
  int nfl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
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
  lua_pushstring(L, dirname_(s->dirs));
  return 1;
}

const luaL_Reg lipc_stream_methods[] = {
  {"direction", lstream_direction},
  {"read", lstream_read},
  {"write", lstream_write},
  {"lines", lstream_lines},
  {"setnonblock", lstream_setnonblock},
  {"tofile", lstream_tofile},
  {"fileno", lipc_m_fileno},
  {NULL, NULL}
};

/* ---- pipes ------------------------------------------------------------- */

lipc_stream *lipc_pipe_new(lua_State *L) {
  return lipc_new(L, &pipe_class, 0);
}

void lipc_pipe_set(lipc_stream *s, int fd, int dirs) {
  s->h.fd = fd;
  s->dirs = dirs;
  int fl = fcntl(fd, F_GETFL);
  s->nonblock = fl >= 0 && (fl & O_NONBLOCK) != 0;
  s->h.open = 1;
}

/* ipc.pipe{nonblock=, size=} -> r, w */
static int lpipe_pipe(lua_State *L) {
  static const char *const opts[] = {"nonblock", "size", NULL};
  lipc_checkoptions(L, 1, opts);
  int nb = lipc_optbool(L, 1, "nonblock", 0);
  lua_Integer size = lipc_optint(L, 1, "size", 0, 0, INT_MAX);
  lipc_stream *r = lipc_pipe_new(L);
  lipc_stream *w = lipc_pipe_new(L);
  int fds[2];
  int rc;
  LIPC_FDCALL(L, rc, pipe2(fds, O_CLOEXEC | (nb ? O_NONBLOCK : 0)));
  if (rc != 0) return lipc_error(L, errno, "pipe", NULL);
  r->h.fd = fds[0]; r->dirs = LIPC_STREAM_READ; r->nonblock = nb; r->h.open = 1;
  w->h.fd = fds[1]; w->dirs = LIPC_STREAM_WRITE; w->nonblock = nb; w->h.open = 1;
  if (size > 0 && fcntl(fds[1], F_SETPIPE_SZ, (int)size) < 0) {
    int err = errno;
    lipc_release(&r->h);
    lipc_release(&w->h);
    return lipc_error(L, err, "fcntl F_SETPIPE_SZ", NULL);
  }
  return 2;
}

/* p:size() -> the pipe's capacity in bytes (F_GETPIPE_SZ). */
static int lpipe_size(lua_State *L) {
  lipc_stream *s = lipc_check(L, 1, &pipe_class);
  int n = fcntl(s->h.fd, F_GETPIPE_SZ);
  if (n < 0) return lipc_error(L, errno, "fcntl F_GETPIPE_SZ", NULL);
  lua_pushinteger(L, n);
  return 1;
}

/* ---- FIFOs ------------------------------------------------------------- */

/* The file at path itself (a symlink is not followed) into *id: 0, or an
 * errno value. */
static int file_id_of(const char *path, file_id *id) {
  memset(id, 0, sizeof *id);
  struct statx sx;
  if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_INO | STATX_BTIME, &sx) == 0) {
    id->dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
    id->ino = (ino_t)sx.stx_ino;
    id->has_btime = (sx.stx_mask & STATX_BTIME) != 0;
    id->btime = sx.stx_btime;
    id->is_fifo = S_ISFIFO(sx.stx_mode);
  } else {
    if (errno != ENOSYS && errno != EPERM) return errno;  /* EPERM: a seccomp filter */
    struct stat st;
    if (lstat(path, &st) != 0) return errno;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->is_fifo = S_ISFIFO(st.st_mode);
  }
  union { struct file_handle fh; unsigned char buf[sizeof(struct file_handle) + FILE_HANDLE_MAX]; } h;
  h.fh.handle_bytes = FILE_HANDLE_MAX;
  int mount_id;
  if (name_to_handle_at(AT_FDCWD, path, &h.fh, &mount_id, 0) == 0) {  /* symlinks not followed */
    id->handle_len = h.fh.handle_bytes;
    id->handle_type = h.fh.handle_type;
    memcpy(id->handle, h.fh.f_handle, h.fh.handle_bytes);
  }
  return 0;
}

/* 0 when the path still leads to the FIFO f names (not to a file or FIFO
 * put there after ours was removed, nor a symlink), else ENOENT or the
 * errno value of looking. */
static int same_fifo(const lfifo *f) {
  file_id now;
  int err = file_id_of(f->path, &now);
  if (err != 0) return err;
  const file_id *was = &f->id;
  int same = now.is_fifo && now.dev == was->dev && now.ino == was->ino &&
             (!now.has_btime || !was->has_btime ||
              (now.btime.tv_sec == was->btime.tv_sec && now.btime.tv_nsec == was->btime.tv_nsec)) &&
             (!now.handle_len || !was->handle_len ||
              (now.handle_len == was->handle_len && now.handle_type == was->handle_type &&
               memcmp(now.handle, was->handle, now.handle_len) == 0));
  return same ? 0 : ENOENT;
}

/* Release of a FIFO name: remove the path when owned and still ours. */
static int fifo_release(lipc_handle *h, int remove_name) {
  lfifo *f = (lfifo *)h;
  int err = 0;
  if (remove_name && f->path && same_fifo(f) == 0 && unlink(f->path) != 0 && errno != ENOENT)
    err = errno;
  free(f->path);
  f->path = NULL;
  return err;
}

/* "/tmp/f, owner" */
static void fifo_describe(lipc_handle *h, luaL_Buffer *b) {
  lfifo *f = (lfifo *)h;
  luaL_addstring(b, f->path);
  if (h->owns && h->owner == getpid()) luaL_addstring(b, ", owner");
}

/* audit: name = path */
static void fifo_audit(lua_State *L, lipc_handle *h) {
  lua_pushstring(L, ((lfifo *)h)->path);
  lua_setfield(L, -2, "name");
}

/* A path argument: a non-empty string without NUL, below PATH_MAX. */
static const char *check_path(lua_State *L, int idx) {
  size_t len;
  const char *p = luaL_checklstring(L, idx, &len);
  luaL_argcheck(L, len > 0, idx, "empty path");
  luaL_argcheck(L, memchr(p, '\0', len) == NULL, idx, "path contains a NUL byte");
  luaL_argcheck(L, len < PATH_MAX, idx, "path too long");
  return p;
}

/* ipc.mkfifo(path, {mode=, persist=, excl=}) -> a lipc.fifo name */
static int lpipe_mkfifo(lua_State *L) {
  static const char *const opts[] = {"mode", "persist", "excl", NULL};
  char gen[PATH_MAX];
  const char *path;
  if (lua_isnoneornil(L, 1)) {
    char prefix[PATH_MAX];
    snprintf(prefix, sizeof prefix, "%s/", lipc_tmpdir());
    lipc_genname(gen, sizeof gen, prefix, ".fifo");
    path = gen;
  } else {
    path = check_path(L, 1);
  }
  lipc_checkoptions(L, 2, opts);
  mode_t mode = lipc_optmode(L, 2, "mode", 0600);
  int persist = lipc_optbool(L, 2, "persist", 0);
  int excl = lipc_optbool(L, 2, "excl", 1);
  lfifo *f = lipc_new(L, &fifo_class, 0);
  f->path = strdup(path);
  if (f->path == NULL) return luaL_error(L, "not enough memory");
  int owns = 1, rc, tries = 0;
  /* a generated name taken (by chance, or by someone else): the next name */
  while ((rc = mkfifo(f->path, mode)) != 0 && errno == EEXIST && path == gen && ++tries < 100) {
    char prefix[PATH_MAX];
    snprintf(prefix, sizeof prefix, "%s/", lipc_tmpdir());
    lipc_genname(gen, sizeof gen, prefix, ".fifo");
    free(f->path);
    f->path = strdup(gen);
    if (f->path == NULL) return luaL_error(L, "not enough memory");
  }
  int err = rc != 0 ? errno : 0;
  if (err == EEXIST && !excl && path != gen) {  /* an existing FIFO: a name object, not its owner */
    owns = 0;
    err = 0;
  }
  /* remember the FIFO itself (never what a symlink at the path leads to):
   * the path is removed only while it still leads to this FIFO */
  if (err == 0) {
    err = file_id_of(f->path, &f->id);
    if (err == 0 && !f->id.is_fifo) err = owns ? ENOENT : EEXIST;  /* replaced at once */
  }
  if (err != 0) {
    free(f->path);
    f->path = NULL;
    return lipc_error(L, err, "mkfifo", path);
  }
  f->h.owns = (unsigned char)owns;
  f->h.persist = (unsigned char)persist;
  f->h.open = 1;
  return 1;
}

/* f:name() -> the path */
static int lfifo_name(lua_State *L) {
  lfifo *f = lipc_check(L, 1, &fifo_class);
  lua_pushstring(L, f->path);
  return 1;
}

/* f:unlink() -> true: remove the path now (close will not again). */
static int lfifo_unlink(lua_State *L) {
  lfifo *f = lipc_check(L, 1, &fifo_class);
  int err = same_fifo(f);
  if (err != 0 || unlink(f->path) != 0) return lipc_error(L, err ? err : errno, "unlink", f->path);
  f->h.owns = 0;
  lua_pushboolean(L, 1);
  return 1;
}

/* Sleep up to ms milliseconds (less if the deadline is nearer) while
 * watching fd for events; 0, ETIMEDOUT when the deadline passed, EINTR. */
static int backoff(lipc_deadline *d, int fd, short events, int ms, int *ready) {
  struct pollfd p = { .fd = fd, .events = events, .revents = 0 };
  *ready = 0;
  /* a Ctrl-C that came outside poll (during the open or read) */
  if (lipc_interrupted(d)) return EINTR;
  int left = lipc_deadline_ms(d);
  if (left == 0) return ETIMEDOUT;
  if (left > 0 && left < ms) ms = left;
  int n = poll(&p, fd >= 0 ? 1 : 0, ms);
  if (n < 0 && errno == EINTR) return lipc_interrupted(d) ? EINTR : 0;
  if (n > 0) *ready = p.revents;
  return 0;
}

/* Wait until a writer has opened the FIFO our nonblocking reader fd is
 * on: a nonblocking read gives EAGAIN (writer, no data) or data (kept
 * read ahead) instead of 0 (no writer), or poll reports a writer that
 * came and went.  Returns 0 or an errno value. */
static int wait_writer(lipc_stream *s, lipc_deadline *d) {
  int ms = 1;
  for (;;) {
    if (ahead_reserve(s, AHEAD)) return ENOMEM;
    ssize_t r = read(s->h.fd, s->buf + s->off + s->len, s->cap - s->off - s->len);
    if (r > 0) { s->len += (size_t)r; return 0; }
    if (r < 0 && errno == EAGAIN) return 0;
    if (r < 0 && errno != EINTR) return errno;
    int ready;
    int err = backoff(d, s->h.fd, POLLIN, ms, &ready);
    if (err) return err;
    if (ready & (POLLIN | POLLHUP)) return 0;  /* data, or a writer came and left */
    if (ms < 50) ms *= 2;
  }
}

/* ipc.fifo.open(path, "r"|"w"|"rw", timeout, {nonblock=}) -> lipc.pipe */
static int lfifo_open(lua_State *L) {
  static const char *const opts[] = {"nonblock", NULL};
  const char *path = check_path(L, 1);
  const char *m = luaL_checkstring(L, 2);
  int dirs, flags;
  if (strcmp(m, "r") == 0) { dirs = LIPC_STREAM_READ; flags = O_RDONLY; }
  else if (strcmp(m, "w") == 0) { dirs = LIPC_STREAM_WRITE; flags = O_WRONLY; }
  else if (strcmp(m, "rw") == 0 || strcmp(m, "r+") == 0) { dirs = LIPC_STREAM_READ | LIPC_STREAM_WRITE; flags = O_RDWR; }
  else return luaL_argerror(L, 2, "mode must be \"r\", \"w\" or \"rw\"");
  lipc_deadline d;
  lipc_deadline_init(L, 3, &d);
  lipc_checkoptions(L, 4, opts);
  int nb = lipc_optbool(L, 4, "nonblock", 0);
  lipc_stream *s = lipc_pipe_new(L);
  int ms = 1, fd;
  for (;;) {
    LIPC_FDCALL(L, fd, open(path, flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
    if (fd >= 0) break;
    int err = errno;
    if (err == EINTR) {
      if (lipc_interrupted(&d)) return lipc_error(L, EINTR, "open", path);
      continue;
    }
    if (err != ENXIO || dirs != LIPC_STREAM_WRITE) return lipc_error(L, err, "open", path);
    /* no reader yet: Linux has no event for a reader arriving */
    int ready;
    err = backoff(&d, -1, 0, ms, &ready);
    if (err) return lipc_fail(L, err, "open", path);
    if (ms < 50) ms *= 2;
  }
  struct stat st;
  int serr = fstat(fd, &st) != 0 ? errno : S_ISFIFO(st.st_mode) ? 0 : EINVAL;
  if (serr) {
    int err = serr;
    close(fd);
    return lipc_error(L, err, "open (not a FIFO)", path);
  }
  s->h.fd = fd;
  s->dirs = dirs;
  s->nonblock = 1;
  s->h.open = 1;
  if (dirs == LIPC_STREAM_READ) {
    int err = wait_writer(s, &d);
    if (err) {
      lipc_release(&s->h);
      return lipc_fail(L, err, "open", path);
    }
  }
  if (!nb) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
      int err = errno;
      lipc_release(&s->h);
      return lipc_error(L, err, "fcntl", path);
    }
    s->nonblock = 0;
  }
  return 1;
}

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

static const luaL_Reg pipe_methods[] = {
  {"size", lpipe_size},
  {NULL, NULL}
};

static const luaL_Reg fifo_methods[] = {
  {"name", lfifo_name},
  {"unlink", lfifo_unlink},
  {NULL, NULL}
};

void lipc_open_pipe(lua_State *L) {
  static int probed;
  if (!probed) { probe(); make_tag(); probed = 1; }
  /* the pipe methods: the stream ones plus size */
  luaL_Reg methods[16];
  int n = 0;
  for (const luaL_Reg *r = lipc_stream_methods; r->name; r++) methods[n++] = *r;
  for (const luaL_Reg *r = pipe_methods; r->name; r++) methods[n++] = *r;
  methods[n].name = NULL;
  methods[n].func = NULL;
  lipc_register(L, &pipe_class, methods);
  lipc_register(L, &fifo_class, fifo_methods);
  lua_pushcfunction(L, lpipe_pipe);
  lua_setfield(L, -2, "pipe");
  lua_pushcfunction(L, lpipe_mkfifo);
  lua_setfield(L, -2, "mkfifo");
  lipc_subtable(L, -1, "fifo");
  lua_pushcfunction(L, lfifo_open);
  lua_setfield(L, -2, "open");
  lua_pop(L, 1);
}
