/*
 * shm.c - not yet written.
 */
#include "core.h"

void lipc_open_shm(lua_State *L) {
  (void)L;
}
