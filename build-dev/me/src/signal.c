/*
 * signal.c - not yet written.
 */
#include "core.h"

void lipc_open_signal(lua_State *L) {
  (void)L;
}
