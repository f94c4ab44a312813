/*
 * stream.c - the byte-stream engine of stream.h: read, write, lines,
 * setnonblock, tofile for every descriptor that carries a byte stream
 * (pipe and FIFO ends of csrc/pipe.c, stream sockets and received
 * descriptors of csrc/socket.c).
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

/* Append the bytes of a failed "a" read to the read-ahead buffer. */
static void ahead_putback(lipc_stream *s, const char *p, size_t n) {
  if (n == 0 || lipc_stream_reserve(s, n) != 0) return;
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
    if (lipc_stream_reserve(s, AHEAD)) return luaL_error(L, "not enough memory");
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
             lipc_stream_dirname(s->dirs), s->h.cls->name);
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

/* s:lines([timeout], [keepnl]) -> iterator over lines without "\n". */
static int lstream_lines(lua_State *L) {
  lipc_stream *s = lipc_stream_check(L, 1);
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

const luaL_Reg lipc_stream_methods[] = {
  {"read", lstream_read},
  {"write", lstream_write},
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
  if (!probed) { probe(); make_tag(); probed = 1; }
}
