/*
 * sem.c - not yet written.
 */
#include "core.h"

void lipc_open_sem(lua_State *L) {
  (void)L;
}
