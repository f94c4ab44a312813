/*
 * proc.c - processes: ipc.fork, ipc.wait, ipc.exit, ipc.getpid, ipc.getppid.
 * (ipc.spawn, ipc.exec and the lipc.process handle come next.)
 */
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* ipc.fork(): 0 in the child, the child's pid in the parent. */
static int lproc_fork(lua_State *L) {
  pid_t pid = lipc_fork();
  if (pid < 0) return lipc_error(L, errno, "fork", NULL);
  lua_pushinteger(L, pid);
  return 1;
}

/* Push the outcome of a wait status: "exited", code | "signaled", signo. */
static int push_status(lua_State *L, int status) {
  if (WIFEXITED(status)) {
    lua_pushliteral(L, "exited");
    lua_pushinteger(L, WEXITSTATUS(status));
  } else {
    lua_pushliteral(L, "signaled");
    lua_pushinteger(L, WTERMSIG(status));
  }
  return 2;
}

/* ipc.wait(pid, timeout): "exited", code | "signaled", signo | nil, "timeout". */
static int lproc_wait(lua_State *L) {
  pid_t pid = (pid_t)lipc_checkrange(L, 1, 1, INT32_MAX);
  lipc_deadline d;
  lipc_deadline_init(L, 2, &d);
  for (;;) {
    int status;
    pid_t r = waitpid(pid, &status, d.forever ? 0 : WNOHANG);
    if (r == pid) return push_status(L, status);
    if (r < 0 && errno != EINTR) return lipc_error(L, errno, "waitpid", NULL);
    if (r < 0 && lipc_interrupted(&d)) return lipc_error(L, EINTR, "waitpid", NULL);
    if (r == 0) {
      if (lipc_deadline_expired(&d)) return lipc_timeout(L);
      struct timespec nap = {0, 1000000};  /* replaced by pidfd polling next */
      nanosleep(&nap, NULL);
    }
  }
}

/* ipc.exit(code): leave at once, flushing stdio but running no Lua GC. */
static int lproc_exit(lua_State *L) {
  int code;
  if (lua_isboolean(L, 1)) code = lua_toboolean(L, 1) ? 0 : 1;
  else code = (int)lipc_optrange(L, 1, 0, 0, 255);
  fflush(NULL);
  _exit(code);
  return 0;
}

static int lproc_getpid(lua_State *L) {
  lua_pushinteger(L, getpid());
  return 1;
}

static int lproc_getppid(lua_State *L) {
  lua_pushinteger(L, getppid());
  return 1;
}

static const luaL_Reg funcs[] = {
  {"fork", lproc_fork},
  {"wait", lproc_wait},
  {"exit", lproc_exit},
  {"getpid", lproc_getpid},
  {"getppid", lproc_getppid},
  {NULL, NULL}
};

void lipc_open_proc(lua_State *L) {
  luaL_setfuncs(L, funcs, 0);
}
