/*
 * socket.c - not yet written.
 */
#include "core.h"

void lipc_open_socket(lua_State *L) {
  (void)L;
}
