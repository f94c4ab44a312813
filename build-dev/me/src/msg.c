/*
 * msg.c - not yet written.
 */
#include "core.h"

void lipc_open_msg(lua_State *L) {
  (void)L;
}
