/*
 * fd.h - descriptors as objects (csrc/fd.c): ipc.fd(n) adoption, detach,
 * dup, and the typed objects of received descriptors (SCM_RIGHTS), shared
 * with csrc/socket.c.
 *
 * A descriptor becomes "a lipc.socket for a socket (Unix, IPv4, IPv6), a
 * lipc.pipe for a pipe or FIFO, a lipc.fd otherwise".  Ownership moves
 * without any window where a raise could leak or double-close it: the
 * descriptor first sits in a holder (an fd box, or a lipc.fd object) whose
 * __gc closes it; the typed object is created (may raise), then the
 * descriptor moves into it with plain assignments.
 */
#ifndef LIPC_FD_H
#define LIPC_FD_H

#include "stream.h"

#include <sys/socket.h>

/* Most descriptors one SCM_RIGHTS message carries (the kernel's SCM_MAX_FD). */
#define LIPC_MAXFDS 253

/* Push a new fd box (its __gc closes the descriptors it still holds);
 * returns its slots, all -1. */
int *lipc_fdbox_new(lua_State *L);
/* Move every descriptor of m's SCM_RIGHTS control messages into the box
 * slots (no Lua call); returns how many arrived (slots beyond
 * LIPC_MAXFDS are closed at once). */
int lipc_fdbox_fill(int *slots, struct msghdr *m);
/* Close every descriptor still in the box. */
void lipc_fdbox_clear(int *slots);
/* Push the typed object for slot i of the box (which then owns the
 * descriptor; the slot becomes -1). */
void lipc_fdbox_push(lua_State *L, int *slots, int i);

/* csrc/socket.c: push a new closed lipc.fd (both directions). */
lipc_stream *lipc_fdobj_new(lua_State *L);
/* csrc/socket.c: push a new closed lipc.socket describing the socket fd
 * (family, type, address, listening), or nothing and NULL when fd is not
 * a Unix, IPv4 or IPv6 socket.  The caller then sets h.fd and h.open. */
lipc_stream *lipc_socket_adopt(lua_State *L, int fd);

#endif
