/*
 * waiter.c - ipc.step: run lipc calls inside another event loop (cqueues,
 * luv, a hand-written poll loop).
 *
 * ipc.step(co, ...) resumes the coroutine co once, with co made the
 * running lipc task for the duration of that resume (lipc_task_enter, as
 * csrc/task.c does around its own resumes).  A lipc call in co that would
 * block therefore yields its wait record, exactly as inside ipc.go, and
 * ipc.step reads the record (lipc_task_waiting) and hands it to the caller
 * as plain values: a descriptor, the events, a timeout.  The caller waits
 * for that with its own loop (cqueues.poll, a luv poll handle and timer)
 * and steps co again; the call's continuation (core.c's run_k) then tries
 * again, and returns the same results, timeouts and errors as a blocking
 * call.  Nothing here waits: ipc.step never blocks the process, except
 * for what co itself does between its waits.
 *
 * The translation of a record follows csrc/task.c's park_wait:
 *   - a descriptor: "wait", fd, "r"|"w"|"rw", seconds left (nil: none);
 *     when a wait said ready and the call still would block (w->tries > 1)
 *     every other step answers a pause without descriptor instead (50 us
 *     doubling to 5 ms), so a descriptor that polls ready but cannot make
 *     progress never spins the other loop;
 *   - a futex word (semaphores, mutexes, rings): a 1 ms pause, capped by
 *     the deadline (as task.c until its futex waiter lands);
 *   - a sleep: the time left;
 *   - nothing: a backoff pause.
 */
#include "core.h"

#include <poll.h>
#include <string.h>

/* Seconds left before the deadline of w (0 once passed), or -1: none. */
static double left_s(const lipc_wait *w) {
  struct timespec ts;
  if (lipc_deadline_left(&w->d, &ts) < 0) return -1;
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double min_s(double a, double left) { return left >= 0 && left < a ? left : a; }

/* Push "wait", fd|nil, events|nil, timeout|nil for the wait record w. */
static int push_wait(lua_State *L, const lipc_wait *w) {
  double left = left_s(w);
  lua_pushliteral(L, "wait");
  if (w->fd >= 0 && !(w->tries > 1 && w->tries % 2 == 0)) {
    lua_pushinteger(L, w->fd);
    int r = (w->events & POLLIN) != 0, wr = (w->events & POLLOUT) != 0;
    lua_pushstring(L, r && wr ? "rw" : wr ? "w" : "r");
    if (left >= 0) lua_pushnumber(L, left);
    else lua_pushnil(L);
    return 4;
  }
  double pause;
  if (w->fd >= 0) pause = min_s(1e-9 * (double)lipc_backoff_ns(w->tries - 2), left);
  else if (w->word != NULL) pause = min_s(1e-3, left);
  else if (w->sleep) pause = left >= 0 ? left : 3600;
  else pause = min_s(1e-9 * (double)lipc_backoff_ns(w->tries - 1), left);
  lua_pushnil(L);
  lua_pushnil(L);
  lua_pushnumber(L, pause);
  return 4;
}

/* ipc.step(co, ...): resume co once as a lipc task.  Returns
 *   "wait", fd|nil, events|nil, timeout|nil  co waits in a lipc call: step
 *                                             it again (no arguments) when
 *                                             fd is ready for events or
 *                                             after timeout seconds;
 *   "yield", ...                              co called coroutine.yield(...);
 *   "done", ...                               co returned these values;
 *   "error", err, traceback                   co raised (its <close>
 *                                             variables have run). */
static int l_step(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argcheck(L, co != NULL, 1, "coroutine expected");
  int nargs = lua_gettop(L) - 1;
  if (co == L || !(lua_status(co) == LUA_YIELD || (lua_status(co) == LUA_OK && lua_gettop(co) > 0)))
    return luaL_error(L, "ipc.step: cannot resume a %s coroutine",
                      co == L ? "running" : lua_status(co) == LUA_OK ? "dead or running" : "dead");
  if (lua_status(co) == LUA_OK) {
    lua_Debug ar;
    if (lua_getstack(co, 0, &ar)) return luaL_error(L, "ipc.step: cannot resume a running coroutine");
  }
  if (!lua_checkstack(co, nargs)) return luaL_error(L, "ipc.step: too many arguments");
  lua_xmove(L, co, nargs);
  lua_State *prev = lipc_task_enter(co, 0);
  int nres = 0;
  int st = lua_resume(co, L, nargs, &nres);
  lipc_wait *w = st == LUA_YIELD ? lipc_task_waiting() : NULL;
  lipc_task_enter(prev, 0);
  if (st == LUA_YIELD && w != NULL) {
    lua_pop(co, nres);   /* a lipc wait yields nothing */
    return push_wait(L, w);
  }
  if (st == LUA_YIELD || st == LUA_OK) {
    if (!lua_checkstack(L, nres + 1)) return luaL_error(L, "ipc.step: too many results");
    if (st == LUA_YIELD) lua_pushliteral(L, "yield");
    else lua_pushliteral(L, "done");
    lua_xmove(co, L, nres);
    return nres + 1;
  }
  /* an error: keep it and a traceback, then run co's <close> variables */
  lua_pushliteral(L, "error");
  lua_xmove(co, L, 1);
  const char *msg = lua_tostring(L, -1);
  luaL_traceback(L, co, msg != NULL ? msg : "(error object is not a string)", 0);
#if LUA_VERSION_RELEASE_NUM >= 50406
  int cst = lua_closethread(co, L);
#else
  int cst = lua_resetthread(co);
#endif
  if (cst != LUA_OK) {   /* a __close raised: that error is co's */
    lua_xmove(co, L, 1);
    lua_replace(L, -3);
  }
  return 3;
}

/* Register ipc.step. */
void lipc_open_waiter(lua_State *L) {
  lua_pushcfunction(L, l_step);
  lua_setfield(L, -2, "step");
}
