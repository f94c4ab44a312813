/*
 * mq.c - not yet written.
 */
#include "core.h"

void lipc_open_mq(lua_State *L) {
  (void)L;
}
