/*
 * pipe.c - not yet written.
 */
#include "core.h"

void lipc_open_pipe(lua_State *L) {
  (void)L;
}
