/*
 * fd.c - descriptors as objects: ipc.fd(n) adopts a descriptor, obj:detach()
 * gives it up, obj:dup() duplicates it, and received descriptors
 * (csrc/socket.c's recvfd/recvfds) become typed objects through the fd box.
 */
#include "core.h"
#include "fd.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FDBOX "lipc.fdbox"

/* ---- the fd box ---------------------------------------------------------- */

/* __gc of a box: close what it still holds. */
static int fdbox_gc(lua_State *L) {
  int *slots = luaL_checkudata(L, 1, FDBOX);
  if (lua_rawlen(L, 1) != LIPC_MAXFDS * sizeof(int)) return 0;  /* its metatable moved elsewhere */
  lipc_fdbox_clear(slots);
  return 0;
}

int *lipc_fdbox_new(lua_State *L) {
  int *slots = lua_newuserdatauv(L, LIPC_MAXFDS * sizeof(int), 0);
  for (int i = 0; i < LIPC_MAXFDS; i++) slots[i] = -1;
  luaL_setmetatable(L, FDBOX);
  return slots;
}

int lipc_fdbox_fill(int *slots, struct msghdr *m) {
  int count = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (count < LIPC_MAXFDS) slots[count] = fd;
      else close(fd);
      count++;
    }
  }
  return count;
}

void lipc_fdbox_clear(int *slots) {
  for (int i = 0; i < LIPC_MAXFDS; i++) {
    if (slots[i] >= 0) close(slots[i]);
    slots[i] = -1;
  }
}

/* ---- typing -------------------------------------------------------------- */

/* Directions of a descriptor from its access mode. */
static int dirs_of(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return LIPC_STREAM_READ | LIPC_STREAM_WRITE;
  switch (fl & O_ACCMODE) {
    case O_RDONLY: return LIPC_STREAM_READ;
    case O_WRONLY: return LIPC_STREAM_WRITE;
    default: return LIPC_STREAM_READ | LIPC_STREAM_WRITE;
  }
}

/* Push a new closed object of the type fd calls for, ready to take it:
 * everything that may raise happens here, before the hand-over. */
static lipc_stream *typed_new(lua_State *L, int fd) {
  struct stat st;
  int isdir = 0;
  if (fstat(fd, &st) == 0) {
    if (S_ISSOCK(st.st_mode)) {
      lipc_stream *s = lipc_socket_adopt(L, fd);
      if (s) return s;
    } else if (S_ISFIFO(st.st_mode)) {
      lipc_stream *s = lipc_pipe_new(L);
      s->dirs = dirs_of(fd);
      return s;
    }
    isdir = S_ISDIR(st.st_mode);
  }
  lipc_stream *s = lipc_fdobj_new(L);
  s->dirs = isdir ? LIPC_STREAM_READ : dirs_of(fd);
  return s;
}

/* Hand fd to s (made by typed_new): plain assignments, nothing can raise. */
static void typed_take(lipc_stream *s, int fd) {
  int fl = fcntl(fd, F_GETFL);
  s->nonblock = fl >= 0 && (fl & O_NONBLOCK) != 0;
  s->h.fd = fd;
  s->h.open = 1;
}

void lipc_fdbox_push(lua_State *L, int *slots, int i) {
  lipc_stream *s = typed_new(L, slots[i]);
  typed_take(s, slots[i]);
  slots[i] = -1;
}

/* The open lipc object that owns fd in this process, pushed; or nothing
 * pushed and NULL. */
static lipc_handle *owner_of(lua_State *L, int fd) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, LIPC_LIVE_KEY) != LUA_TTABLE) { lua_pop(L, 1); return NULL; }
  int live = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, live)) {
    lua_pop(L, 1);
    lipc_handle *h = lipc_toany(L, -1);
    if (h != NULL && h->open && h->fd == fd) {
      lua_remove(L, live);
      return h;
    }
  }
  lua_pop(L, 1);
  return NULL;
}

/* ---- ipc.fd, detach, dup -------------------------------------------------- */

/* ipc.fd(n): adopt descriptor n as a lipc.socket, lipc.pipe or lipc.fd,
 * which owns it from now on (closes it; close-on-exec is set above 2). */
static int lfd_adopt(lua_State *L) {
  int fd = (int)lipc_checkrange(L, 1, 0, INT_MAX);
  if (owner_of(L, fd) != NULL)
    return luaL_argerror(L, 1, lua_pushfstring(L, "descriptor %d is owned by %s (use its dup)", fd,
                                               luaL_tolstring(L, -1, NULL)));
  int fl = fcntl(fd, F_GETFD);
  if (fl < 0) {
    char what[32];
    snprintf(what, sizeof what, "%d", fd);
    return lipc_error(L, errno, "fcntl", what);
  }
  lipc_stream *s = typed_new(L, fd);
  if (fd > 2 && !(fl & FD_CLOEXEC)) (void)fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
  typed_take(s, fd);
  return 1;
}

/* obj:detach() -> n [, bytes]: give the descriptor up: the object is closed
 * as by close() (an owned socket path is removed), except that n stays
 * open; bytes already read ahead by lines() come second. */
static int lfd_detach(lua_State *L) {
  lipc_stream *s = lipc_stream_check(L, 1);
  int fd = s->h.fd;
  int n = 1;
  lua_pushinteger(L, fd);
  if (s->len > 0) {
    lua_pushlstring(L, s->buf + s->off, s->len);
    n = 2;
  }
  s->h.fd = -1;
  (void)lipc_release(&s->h);
  return n;
}

/* obj:dup() -> a new object of the same kind on a close-on-exec duplicate. */
static int lfd_dup(lua_State *L) {
  lipc_stream *s = lipc_stream_check(L, 1);
  int *slots = lipc_fdbox_new(L);
  int fd;
  LIPC_FDCALL(L, fd, fcntl(s->h.fd, F_DUPFD_CLOEXEC, 3));
  if (fd < 0) return lipc_error(L, errno, "dup", NULL);
  slots[0] = fd;
  lipc_fdbox_push(L, slots, 0);
  lipc_stream *c = (lipc_stream *)lua_touserdata(L, -1);
  if (c->h.cls == s->h.cls) c->dirs = s->dirs;   /* a pipe end, a "rw" FIFO end */
  return 1;
}

static const luaL_Reg stream_extra[] = {
  {"detach", lfd_detach},
  {"dup", lfd_dup},
  {NULL, NULL}
};

/* Register ipc.fd, the fd box, and detach/dup on every descriptor stream
 * class (lipc.pipe, lipc.socket, lipc.fd). */
void lipc_open_fd(lua_State *L) {
  if (luaL_newmetatable(L, FDBOX)) {
    lua_pushcfunction(L, fdbox_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (lua_getfield(L, LUA_REGISTRYINDEX, LIPC_METHODS_KEY) == LUA_TTABLE) {
    static const char *const kinds[] = {"pipe", "socket", "fd", NULL};
    for (int i = 0; kinds[i]; i++) {
      if (lua_getfield(L, -1, kinds[i]) == LUA_TTABLE) luaL_setfuncs(L, stream_extra, 0);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, lfd_adopt);
  lua_setfield(L, -2, "fd");
}
