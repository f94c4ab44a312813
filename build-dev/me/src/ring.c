/*
 * ring.c - not yet written.
 */
#include "core.h"

void lipc_open_ring(lua_State *L) {
  (void)L;
}
