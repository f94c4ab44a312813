/*
 * region.h - the lipc.region type (csrc/shm.c) as seen by the families
 * that place objects inside a mapping (csrc/sem.c, csrc/sync.c, csrc/ring.c).
 *
 * An object placed in a region keeps the region userdata alive in a user
 * value and counts itself in r->users; closing the region while users
 * remain marks it closed but defers munmap/shmdt until the last user
 * calls lipc_region_unretain.
 */
#ifndef LIPC_REGION_H
#define LIPC_REGION_H

#include "core.h"

#include <limits.h>

enum { LIPC_REGION_POSIX = 1, LIPC_REGION_ANON, LIPC_REGION_SYSV, LIPC_REGION_FILE };

typedef struct lipc_region {
  lipc_handle h;            /* h.fd: the shm/file descriptor, or -1 */
  unsigned char *addr;      /* mapping, NULL once unmapped */
  size_t size;              /* bytes */
  int kind;                 /* LIPC_REGION_* */
  int users;                /* live objects placed in the mapping */
  int shmid;                /* System V id, or -1 */
  int writable;
  char name[PATH_MAX];      /* POSIX name or file path ("" for anonymous) */
} lipc_region;

extern const lipc_class lipc_region_class;

/* The open region at idx; raises otherwise. */
lipc_region *lipc_region_check(lua_State *L, int idx);
/* Address of [offset, offset + len) inside the open region at ridx, the
 * offset read from argument oidx; raises unless it is in bounds and a
 * multiple of align. */
void *lipc_region_at(lua_State *L, int ridx, int oidx, size_t len, size_t align,
                     lipc_region **out);
/* The same for an object that will be written (sem_t, mutex, cond...):
 * also raises when the region is mapped read-only. */
void *lipc_region_at_rw(lua_State *L, int ridx, int oidx, size_t len, size_t align,
                        lipc_region **out);
/* Count one more object living inside r. */
void lipc_region_retain(lipc_region *r);
/* One object inside r is gone; unmaps when r is closed and none remain. */
void lipc_region_unretain(lipc_region *r);

#endif
