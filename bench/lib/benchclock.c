/*
 * benchclock.c - a monotonic clock for the Lua side of the benchmarks
 * (Lua's os.clock is CPU time, useless for round trips).  Built by
 * bench/run.sh into bench/out/benchclock.so; not part of lipc.
 *   local clock = require "benchclock"
 *   clock.ns()  --> CLOCK_MONOTONIC in integer nanoseconds
 *   clock.now() --> the same in seconds (float)
 */
#define _GNU_SOURCE
#include <time.h>

#include <lua.h>
#include <lauxlib.h>

__attribute__((visibility("default"))) int luaopen_benchclock(lua_State *L);

/* clock.ns(): monotonic time in nanoseconds. */
static int lclock_ns(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000000000 + ts.tv_nsec);
  return 1;
}

/* clock.now(): monotonic time in seconds. */
static int lclock_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
  return 1;
}

/* The module table. */
int luaopen_benchclock(lua_State *L) {
  static const luaL_Reg funcs[] = {{"ns", lclock_ns}, {"now", lclock_now}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
