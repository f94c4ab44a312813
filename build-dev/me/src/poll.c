/*
 * poll.c - not yet written.
 */
#include "core.h"

void lipc_open_poll(lua_State *L) {
  (void)L;
}
