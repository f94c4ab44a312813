/*
 * sync.c - not yet written.
 */
#include "core.h"

void lipc_open_sync(lua_State *L) {
  (void)L;
}
