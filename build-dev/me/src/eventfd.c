/*
 * eventfd.c - not yet written.
 */
#include "core.h"

void lipc_open_eventfd(lua_State *L) {
  (void)L;
}
