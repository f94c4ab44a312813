/*
 * pipe.c - pipes and FIFOs: ipc.pipe, ipc.mkfifo, ipc.fifo.open.  Their
 * ends are lipc.pipe objects whose read/write/lines... are the byte-stream
 * engine of csrc/stream.c.
 */
#include "stream.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef F_GETPIPE_SZ
#define F_GETPIPE_SZ 1032
#define F_SETPIPE_SZ 1031
#endif

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


/* Release of a pipe end. */
static int pipe_release(lipc_handle *h, int remove_name) {
  (void)remove_name;
  return lipc_stream_release((lipc_stream *)h);
}


/* "fd=5, read" */
static void pipe_describe(lipc_handle *h, luaL_Buffer *b) {
  char tmp[64];
  snprintf(tmp, sizeof tmp, "fd=%d, %s", h->fd, lipc_stream_dirname(((lipc_stream *)h)->dirs));
  luaL_addstring(b, tmp);
}


/* ---- pipes ------------------------------------------------------------- */

lipc_stream *lipc_pipe_new(lua_State *L) {
  lipc_stream *s = lipc_new(L, &pipe_class, 0);
  lipc_stream_attach(L, s);
  return s;
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

/* The end of a FIFO open that did not succeed (also its w->stop): the
 * half-made end is closed; the timeout or the error triple. */
static int fifo_open_stop(lua_State *L, lipc_wait *w, int err) {
  lipc_stream *s = w->p;
  if (s->h.open) lipc_release(&s->h);
  return lipc_fail(L, err, "open", lua_tostring(L, 1));
}

/* The try of ipc.fifo.open (see core.h, "the one wait path"); the path is
 * argument 1, the new end s (w->p) waits at 5 with its directions set,
 * w->acc[1] is the nonblock option.  The descriptor is always opened with
 * O_NONBLOCK, so nothing here blocks:
 *  - "w": the open fails with ENXIO while there is no reader, and Linux
 *    has no event for a reader arriving: the try is repeated after a
 *    backoff;
 *  - "r": the open succeeds at once, but the end is handed out only once
 *    a writer came: a read gives data (kept read ahead) or EAGAIN (a
 *    writer, nothing written yet) instead of 0 (no writer), or poll says
 *    POLLHUP (a writer came and went); until then the try is repeated
 *    after a backoff.
 * Then O_NONBLOCK is cleared unless asked for. */
static int try_fifo_open(lua_State *L, lipc_wait *w) {
  lipc_stream *s = w->p;
  const char *path = lua_tostring(L, 1);
  if (!s->h.open) {
    int flags = s->dirs == LIPC_STREAM_READ ? O_RDONLY : s->dirs == LIPC_STREAM_WRITE ? O_WRONLY : O_RDWR;
    int fd;
    LIPC_FDCALL(L, fd, open(path, flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
    if (fd < 0) {
      int err = errno;
      if (err == EINTR) return LIPC_EINTR;
      if (err == ENXIO && s->dirs == LIPC_STREAM_WRITE) { w->fd = -1; return LIPC_AGAIN; }  /* no reader yet */
      return lipc_error(L, err, "open", path);
    }
    struct stat st;
    int err = fstat(fd, &st) != 0 ? errno : S_ISFIFO(st.st_mode) ? 0 : EINVAL;
    if (err) {
      close(fd);
      return lipc_error(L, err, "open (not a FIFO)", path);
    }
    s->h.fd = fd;
    s->nonblock = 1;
    s->h.open = 1;
  }
  if (s->dirs == LIPC_STREAM_READ) {
    if (lipc_stream_reserve(s, 4096)) return luaL_error(L, "not enough memory");
    ssize_t r = read(s->h.fd, s->buf + s->off + s->len, s->cap - s->off - s->len);
    if (r > 0) {
      s->len += (size_t)r;
    } else if (r < 0 && errno == EINTR) {
      return LIPC_EINTR;
    } else if (r < 0 && errno != EAGAIN) {
      return fifo_open_stop(L, w, errno);
    } else if (r == 0) {
      struct pollfd p = { .fd = s->h.fd, .events = POLLIN, .revents = 0 };
      if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLIN | POLLHUP))) {
        w->fd = -1;  /* no writer yet: no event tells when one opens */
        return LIPC_AGAIN;
      }
      /* data, or a writer came and left */
    }
  }
  if (!w->acc[1]) {
    int fl = fcntl(s->h.fd, F_GETFL);
    if (fl < 0 || fcntl(s->h.fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
      int err = errno;
      lipc_release(&s->h);
      return lipc_error(L, err, "fcntl", path);
    }
    s->nonblock = 0;
  }
  lua_settop(L, 5);
  return 1;
}

/* ipc.fifo.open(path, "r"|"w"|"rw", timeout, {nonblock=}) -> lipc.pipe */
static int lfifo_open(lua_State *L) {
  static const char *const opts[] = {"nonblock", NULL};
  check_path(L, 1);
  const char *m = luaL_checkstring(L, 2);
  int dirs;
  if (strcmp(m, "r") == 0) dirs = LIPC_STREAM_READ;
  else if (strcmp(m, "w") == 0) dirs = LIPC_STREAM_WRITE;
  else if (strcmp(m, "rw") == 0 || strcmp(m, "r+") == 0) dirs = LIPC_STREAM_READ | LIPC_STREAM_WRITE;
  else return luaL_argerror(L, 2, "mode must be \"r\", \"w\" or \"rw\"");
  lipc_wait w;
  lipc_wait_init(L, &w, 3, try_fifo_open);
  lipc_checkoptions(L, 4, opts);
  w.acc[1] = lipc_optbool(L, 4, "nonblock", 0);
  lua_settop(L, 4);
  lipc_stream *s = lipc_pipe_new(L);  /* at 5 */
  s->dirs = dirs;
  w.p = s;
  w.stop = fifo_open_stop;
  return lipc_run(L, &w);
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
  lipc_stream_init();
  lipc_stream_register(L, &pipe_class, pipe_methods);  /* the stream methods plus size */
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
