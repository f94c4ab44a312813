/*
 * init.c - luaopen_lipc_core: builds the module table by calling each
 * family's opener in order.
 */
#include "core.h"

__attribute__((visibility("default"))) int luaopen_lipc_core(lua_State *L);

int luaopen_lipc_core(lua_State *L) {
  lua_newtable(L);
  lipc_open_core(L);
  lipc_open_system(L);
  lipc_open_audit(L);
  lipc_open_proc(L);
  lipc_open_pipe(L);
  lipc_open_mq(L);
  lipc_open_msg(L);
  lipc_open_shm(L);
  lipc_open_sem(L);
  lipc_open_sync(L);
  lipc_open_socket(L);
  lipc_open_eventfd(L);
  lipc_open_signal(L);
  lipc_open_poll(L);
  lipc_open_codec(L);
  lipc_open_pool(L);
  lipc_open_ring(L);
  lipc_open_task(L);
  lipc_open_timer(L);
  lipc_open_waiter(L);
  lipc_open_fd(L);          /* after pipe and socket: adds detach/dup to their classes */
  lipc_name_functions(L, -1);
  /* the methods of every class, for the Lua layers (lua/lipc/region.lua) */
  lua_getfield(L, LUA_REGISTRYINDEX, LIPC_METHODS_KEY);
  lua_setfield(L, -2, "_methods");
  return 1;
}
