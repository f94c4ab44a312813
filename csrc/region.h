/*
 * region.h - the lipc.region type (csrc/shm.c) as seen by the families
 * that place objects inside a mapping (csrc/sem.c, csrc/sync.c), and the
 * shm_free wording of ENOSPC errors (csrc/shm.c, csrc/ring.c), and the
 * segment code itself for a type built on a region (csrc/ring.c embeds a
 * lipc_region at the head of its handle and makes, opens, maps and
 * unlinks it through lipc_region_shm/lipc_region_anon/lipc_region_free).
 *
 * An object placed in a region keeps the region userdata alive in a user
 * value and registers itself with lipc_region_place: the region then knows
 * which bytes hold a live semaphore, mutex or condition variable of this
 * process, refuses to place another object over them and refuses every
 * region writer (write, fill, pack, store, add, cas) that overlaps them.
 * Closing the region while objects remain marks it closed but defers
 * munmap/shmdt until the last of them is gone; a region in which this
 * thread may still hold a robust mutex is never unmapped (glibc's
 * per-thread robust list runs through the mutex itself).
 */
#ifndef LIPC_REGION_H
#define LIPC_REGION_H

#include "core.h"

#include <limits.h>

/* The longest POSIX shm name: a file name in /dev/shm plus the '/'. */
#define LIPC_SHM_NAME_MAX (NAME_MAX + 1)

enum { LIPC_REGION_POSIX = 1, LIPC_REGION_ANON, LIPC_REGION_SYSV, LIPC_REGION_FILE };

/* Kinds of objects placed in a region. */
enum { LIPC_PLACED_SEM = 1, LIPC_PLACED_MUTEX, LIPC_PLACED_COND };

/* One object of this process inside a region, shared by every handle that
 * attached the same kind at the same offset. */
typedef struct lipc_placed {
  size_t off, len;          /* bytes [off, off + len) of the mapping */
  int kind;                 /* LIPC_PLACED_* */
  int refs;                 /* live handles using it */
  int held;                 /* mutex: locks this process took through lipc and
                             * has not released (a recursive mutex counts each) */
  pid_t holder;             /* mutex: the thread id that took them */
} lipc_placed;

typedef struct lipc_region {
  lipc_handle h;            /* h.fd: the shm/file descriptor, or -1 */
  unsigned char *addr;      /* mapping, NULL once unmapped */
  size_t size;              /* bytes */
  int kind;                 /* LIPC_REGION_* */
  int users;                /* live objects placed in the mapping */
  int shmid;                /* System V id, or -1 */
  int writable;
  int pinned;               /* never unmap: a lock of this thread may live here */
  lipc_placed **placed;     /* the live objects (malloc'd), nplaced of them */
  int nplaced, capplaced;
  size_t placed_lo, placed_hi;  /* bounds of all of them: a quick miss test */
  dev_t dev;                /* POSIX: device and inode of the segment made or */
  ino_t ino;                /* opened (the name is removed only while it is this one) */
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
/* Register an object of kind at p (from lipc_region_at_rw, len bytes) for
 * the new handle on the top of the stack, and keep r mapped while it lives
 * (the region at stack index ridx becomes the handle's first user value, so
 * the region's memory outlives it).  attach: join the object of
 * the same kind already at that offset, if any; otherwise (and for a new
 * object) the bytes must not overlap a live object: raises
 * "region bytes X..Y hold a live lipc.<kind>" naming argument oidx.
 * Returns the entry, or NULL when out of memory (nothing registered). */
lipc_placed *lipc_region_place(lua_State *L, lipc_region *r, int ridx, int oidx, void *p, size_t len,
                               int kind, int attach);
/* The live object at p of kind in r, or NULL (for checks before placing). */
lipc_placed *lipc_region_find(lipc_region *r, void *p, int kind);
/* A handle of the object e is gone: forget e with its last handle, and
 * unmap r when it is closed and nothing else lives in it. */
void lipc_region_unplace(lipc_region *r, lipc_placed *e);
/* Never unmap r (a robust lock of this thread may remain in it). */
void lipc_region_pin(lipc_region *r);
/* Raise (naming argument oidx) when [off, off + len) overlaps a live
 * object placed in r by this process. */
void lipc_region_guard_slow(lua_State *L, lipc_region *r, int oidx, size_t off, size_t len);
static inline void lipc_region_guard(lua_State *L, lipc_region *r, int oidx, size_t off, size_t len) {
  if (r->nplaced > 0 && len > 0 && off < r->placed_hi && off + len > r->placed_lo)
    lipc_region_guard_slow(L, r, oidx, off, len);
}
/* Count one more object living inside r (lipc_region_place does it). */
void lipc_region_retain(lipc_region *r);
/* One object inside r is gone; unmaps when r is closed and none remain. */
void lipc_region_unretain(lipc_region *r);

/* ---- the segment code, for a handle that embeds a region -------------- */

typedef struct lipc_shm_opts {
  const char *name;         /* NULL: a generated name (create only) */
  lua_Integer size;         /* create: bytes; open: at least this many (0: any) */
  mode_t mode;              /* permissions of a created segment */
  int create;               /* create the name when missing */
  int excl;                 /* with create: fail with EEXIST when it exists */
  int readonly;             /* open and map read-only */
  int keepfd;               /* keep the descriptor in r->h.fd (else closed once mapped) */
} lipc_shm_opts;

/* Make or open the POSIX segment o describes and map it into r (a zeroed
 * handle from lipc_new whose h.open is still 0; the caller sets it): 0,
 * or the error triple pushed and 3 (nothing left behind: a segment made
 * here is unlinked again).  r->h.owns tells whether it created the name;
 * r->dev/r->ino record which segment the name was then. */
int lipc_region_shm(lua_State *L, lipc_region *r, const lipc_shm_opts *o);
/* A shared anonymous mapping of size bytes into r (as above): 0 or 3. */
int lipc_region_anon(lua_State *L, lipc_region *r, size_t size);
/* The release of a region (for the release function of a handle that
 * embeds one): remove the name when remove_name and it still names r's
 * segment (ENOENT is no error), close the descriptor, unmap.  0 or errno. */
int lipc_region_free(lipc_region *r, int remove_name);
/* r:unlink() on a POSIX region: shm_unlink its name now; pushes true (1)
 * or the error triple (3).  r no longer owns the name. */
int lipc_region_unlink(lua_State *L, lipc_region *r);
/* ipc.shm.unlink(name) (argument 1): pushes true or the error triple. */
int lipc_shm_unlink(lua_State *L);

/* The part of an error message that names the shm_free limit when err is
 * ENOSPC: "<name> (size N bytes; shm_free: M bytes left in /dev/shm)";
 * otherwise just name.  Written into buf. */
const char *lipc_shm_what(char *buf, size_t len, const char *name, long long size, int err);

#endif
