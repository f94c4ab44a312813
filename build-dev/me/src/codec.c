/*
 * codec.c - not yet written.
 */
#include "core.h"

void lipc_open_codec(lua_State *L) {
  (void)L;
}
