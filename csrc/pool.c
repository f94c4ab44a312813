/*
 * pool.c - the worker loop of ipc.pool (lua/lipc/pool.lua) in C:
 * ipc._pool_run calls fn(items[j]) for j = first..n into out[j], marking
 * j in the pool's shared progress slot before each call with a plain
 * store instead of a Lua call of region:store per item (about a tenth of
 * a small item's cost).  The slot is what the pool reads when the worker
 * dies, to blame the item it was running.
 */
#include "core.h"
#include "region.h"

/* ipc._pool_run(fn, items, out, first, n, region, offset) -> n + 1.
 * An error raised by fn propagates (the caller's pcall); the slot then
 * holds the index of the item that raised. */
static int lpool_run(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_Integer j = luaL_checkinteger(L, 4);
  lua_Integer n = luaL_checkinteger(L, 5);
  lipc_region *r = lipc_region_check(L, 6);
  lua_Integer off = luaL_checkinteger(L, 7);
  luaL_argcheck(L, r->addr != NULL && off >= 0 && (off & 7) == 0 && (size_t)off + 8 <= r->size, 7,
                "offset out of range");
  int64_t *slot = (int64_t *)(void *)(r->addr + off);
  lua_settop(L, 7);
  for (; j <= n; j++) {
    __atomic_store_n(slot, (int64_t)j, __ATOMIC_RELAXED);   /* read only after this process died */
    lua_pushvalue(L, 1);
    lua_rawgeti(L, 2, j);
    lua_call(L, 1, 1);
    lua_rawseti(L, 3, j);
  }
  lua_pushinteger(L, j);
  return 1;
}

/* Add ipc._pool_run. */
void lipc_open_pool(lua_State *L) {
  lua_pushcfunction(L, lpool_run);
  lua_setfield(L, -2, "_pool_run");
}
