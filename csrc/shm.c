/*
 * shm.c - the lipc.region type: POSIX shared memory (shm_open), anonymous
 * shared mappings, System V segments (shmget/shmat) and mapped files, with
 * bounds-checked byte access, string.pack/unpack in place and 64-bit
 * atomics.  Objects placed inside a region (sem.c, sync.c) register with
 * lipc_region_place: they keep it mapped, and no region writer may touch
 * their bytes while they live (see region.h).
 */
#include "region.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>


/* Unmap (or detach) the mapping of r, once; a pinned mapping stays (see
 * lipc_region_pin).  The registry of placed objects goes with it. */
static int region_unmap(lipc_region *r) {
  int err = 0;
  if (r->nplaced == 0) {
    free(r->placed);
    r->placed = NULL;
    r->capplaced = 0;
  }
  if (r->addr == NULL) return 0;
  if (r->pinned) {
    r->addr = NULL;  /* left mapped on purpose: glibc's robust list may point here */
    return 0;
  }
  if (r->kind == LIPC_REGION_SYSV) {
    if (shmdt(r->addr) != 0) err = errno;
  } else if (munmap(r->addr, r->size) != 0) {
    err = errno;
  }
  r->addr = NULL;
  return err;
}

/* 1 when the POSIX name of r still names the segment r made or opened
 * (the device and inode of /dev/shm<name> are the ones it had then): a
 * name unlinked meanwhile (ENOENT), or unlinked and made again by someone
 * else, is not r's to remove.  1 too when that cannot be told. */
static int same_segment(const lipc_region *r) {
  if (r->dev == 0 && r->ino == 0) return 1;
  char path[PATH_MAX + 16];
  struct stat st;
  snprintf(path, sizeof path, "/dev/shm/%s", r->name + strspn(r->name, "/"));
  if (stat(path, &st) != 0) return errno != ENOENT;
  return st.st_dev == r->dev && st.st_ino == r->ino;
}

/* Release: close the descriptor, remove the name when owned (and still
 * this segment's), unmap unless objects placed inside still live (then
 * the last of them unmaps). */
static int region_release(lipc_handle *h, int remove_name) {
  lipc_region *r = (lipc_region *)h;
  int err = 0;
  if (remove_name) {
    if (r->kind == LIPC_REGION_POSIX && same_segment(r) && shm_unlink(r->name) != 0 &&
        errno != ENOENT)
      err = errno;
    if (r->kind == LIPC_REGION_SYSV && shmctl(r->shmid, IPC_RMID, NULL) != 0 &&
        errno != EINVAL && errno != EIDRM)
      err = errno;
  }
  if (h->fd >= 0 && close(h->fd) != 0 && err == 0) err = errno;
  h->fd = -1;
  if (r->users == 0) {
    int e = region_unmap(r);
    if (err == 0) err = e;
  }
  return err;
}

int lipc_region_free(lipc_region *r, int remove_name) {
  return region_release(&r->h, remove_name);
}

/* __tostring identity: "/board, 4096 bytes". */
static void region_describe(lipc_handle *h, luaL_Buffer *b) {
  lipc_region *r = (lipc_region *)h;
  char tmp[64];
  switch (r->kind) {
    case LIPC_REGION_ANON: luaL_addstring(b, "anonymous"); break;
    case LIPC_REGION_SYSV:
      snprintf(tmp, sizeof tmp, "shmid=%d", r->shmid);
      luaL_addstring(b, tmp);
      break;
    default: luaL_addstring(b, r->name); break;
  }
  snprintf(tmp, sizeof tmp, ", %zu bytes%s", r->size, r->writable ? "" : ", read-only");
  luaL_addstring(b, tmp);
}

/* ipc.audit() identity fields. */
static void region_audit(lua_State *L, lipc_handle *h) {
  lipc_region *r = (lipc_region *)h;
  if (r->kind == LIPC_REGION_SYSV) {
    lua_pushinteger(L, r->shmid);
    lua_setfield(L, -2, "id");
  } else if (r->name[0]) {
    lua_pushstring(L, r->name);
    lua_setfield(L, -2, "name");
  }
  lua_pushinteger(L, (lua_Integer)r->size);
  lua_setfield(L, -2, "size");
}

const lipc_class lipc_region_class = {
  "lipc.region", "region", sizeof(lipc_region), region_release, region_describe, region_audit, 0
};

/* ---- shared with sem.c, sync.c, ring.c ---------------------------------- */

lipc_region *lipc_region_check(lua_State *L, int idx) {
  lipc_region *r = lipc_check(L, idx, &lipc_region_class);
  return r;
}

void *lipc_region_at(lua_State *L, int ridx, int oidx, size_t len, size_t align,
                     lipc_region **out) {
  lipc_region *r = lipc_region_check(L, ridx);
  lua_Integer off = lipc_checkrange(L, oidx, 0, LUA_MAXINTEGER);
  if ((size_t)off > r->size || len > r->size - (size_t)off)
    luaL_argerror(L, oidx, lua_pushfstring(L, "offset %I + %I bytes outside the region (%I bytes)",
                                           off, (lua_Integer)len, (lua_Integer)r->size));
  if (align > 1 && (size_t)off % align != 0)
    luaL_argerror(L, oidx, lua_pushfstring(L, "offset %I is not a multiple of %d", off, (int)align));
  if (out) *out = r;
  return r->addr + off;
}

void *lipc_region_at_rw(lua_State *L, int ridx, int oidx, size_t len, size_t align,
                        lipc_region **out) {
  lipc_region *r;
  void *p = lipc_region_at(L, ridx, oidx, len, align, &r);
  if (!r->writable) luaL_argerror(L, ridx, "region is mapped read-only");
  if (out) *out = r;
  return p;
}

void lipc_region_retain(lipc_region *r) {
  r->users++;
}

void lipc_region_unretain(lipc_region *r) {
  if (r->users > 0) r->users--;
  if (r->users == 0 && !r->h.open) (void)region_unmap(r);
}

void lipc_region_pin(lipc_region *r) {
  r->pinned = 1;
}

/* The Lua type name of a placed kind. */
static const char *placed_name(int kind) {
  switch (kind) {
    case LIPC_PLACED_SEM: return "lipc.sem";
    case LIPC_PLACED_MUTEX: return "lipc.mutex";
    default: return "lipc.cond";
  }
}

/* Raise: the bytes of e are taken (a programming error, not a system one). */
static void placed_conflict(lua_State *L, int oidx, const lipc_placed *e) {
  luaL_argerror(L, oidx, lua_pushfstring(L, "region bytes %I..%I hold a live %s", (lua_Integer)e->off,
                                         (lua_Integer)(e->off + e->len - 1), placed_name(e->kind)));
}

/* Recompute the quick-miss bounds of the registry. */
static void placed_bounds(lipc_region *r) {
  r->placed_lo = SIZE_MAX;
  r->placed_hi = 0;
  for (int i = 0; i < r->nplaced; i++) {
    const lipc_placed *e = r->placed[i];
    if (e->off < r->placed_lo) r->placed_lo = e->off;
    if (e->off + e->len > r->placed_hi) r->placed_hi = e->off + e->len;
  }
}

lipc_placed *lipc_region_find(lipc_region *r, void *p, int kind) {
  size_t off = (size_t)((unsigned char *)p - r->addr);
  for (int i = 0; i < r->nplaced; i++)
    if (r->placed[i]->off == off && r->placed[i]->kind == kind) return r->placed[i];
  return NULL;
}

lipc_placed *lipc_region_place(lua_State *L, lipc_region *r, int ridx, int oidx, void *p, size_t len,
                               int kind, int attach) {
  lua_pushvalue(L, ridx);
  lua_setiuservalue(L, -2, 1);
  size_t off = (size_t)((unsigned char *)p - r->addr);
  lipc_placed *e = attach ? lipc_region_find(r, p, kind) : NULL;
  if (e == NULL) {
    lipc_region_guard(L, r, oidx, off, len);
    if (r->nplaced == r->capplaced) {
      int cap = r->capplaced ? 2 * r->capplaced : 4;
      lipc_placed **grown = realloc(r->placed, sizeof *grown * (size_t)cap);
      if (grown == NULL) return NULL;
      r->placed = grown;
      r->capplaced = cap;
    }
    e = calloc(1, sizeof *e);
    if (e == NULL) return NULL;
    e->off = off;
    e->len = len;
    e->kind = kind;
    r->placed[r->nplaced++] = e;
    placed_bounds(r);
  }
  e->refs++;
  lipc_region_retain(r);
  return e;
}

void lipc_region_unplace(lipc_region *r, lipc_placed *e) {
  if (--e->refs <= 0) {
    for (int i = 0; i < r->nplaced; i++) {
      if (r->placed[i] != e) continue;
      r->placed[i] = r->placed[--r->nplaced];
      break;
    }
    free(e);
    placed_bounds(r);
  }
  lipc_region_unretain(r);
}

void lipc_region_guard_slow(lua_State *L, lipc_region *r, int oidx, size_t off, size_t len) {
  for (int i = 0; i < r->nplaced; i++) {
    const lipc_placed *e = r->placed[i];
    if (off < e->off + e->len && e->off < off + len) placed_conflict(L, oidx, e);
  }
}

/* ---- argument helpers --------------------------------------------------- */

/* Offset at oidx and a length at lidx (default: to the end) inside r;
 * raises when out of bounds (overflow-safe). */
static size_t span(lua_State *L, lipc_region *r, int oidx, int lidx, size_t *len) {
  lua_Integer off = lipc_optrange(L, oidx, 0, 0, LUA_MAXINTEGER);
  if ((size_t)off > r->size)
    luaL_argerror(L, oidx, lua_pushfstring(L, "offset %I outside the region (%I bytes)", off,
                                           (lua_Integer)r->size));
  size_t n = lua_isnoneornil(L, lidx) ? r->size - (size_t)off : lipc_checksize(L, lidx);
  if (n > r->size - (size_t)off)
    luaL_argerror(L, lidx, lua_pushfstring(L, "offset %I + %I bytes outside the region (%I bytes)",
                                           off, (lua_Integer)n, (lua_Integer)r->size));
  *len = n;
  return (size_t)off;
}

/* The open region at 1 for the hot methods (lipc_check: the class stamped at creation). */
static lipc_region *fast_region(lua_State *L) { return lipc_check(L, 1, &lipc_region_class); }

/* The 8-aligned int64 at the offset in argument 2. */
static int64_t *atomic_at(lua_State *L, int write) {
  lipc_region *r = fast_region(L);
  int isnum;
  lua_Integer off = lua_tointegerx(L, 2, &isnum);
  if (!isnum || off < 0 || (off & 7) != 0 || (size_t)off > r->size - 8 || r->size < 8) {
    /* the slow check raises with the precise message */
    off = (unsigned char *)lipc_region_at(L, 1, 2, 8, 8, NULL) - r->addr;
  }
  if (write) {
    if (!r->writable) luaL_error(L, "lipc.region is mapped read-only");
    lipc_region_guard(L, r, 2, (size_t)off, 8);
  }
  return (int64_t *)(r->addr + off);
}

/* The common option keys of segment constructors. */
static const char *const OPEN_OPTS[] = { "create", "excl", "size", "mode", "persist", "readonly", NULL };
static const char *const SYSV_OPTS[] = { "create", "excl", "mode", "persist", "readonly", NULL };
static const char *const MMAP_OPTS[] = { "size", "offset", "access", "mode", NULL };

/* Free bytes of /dev/shm, or -1. */
static long long shm_free(void) {
  struct statvfs v;
  if (statvfs("/dev/shm", &v) != 0) return -1;
  return (long long)v.f_bavail * (long long)v.f_frsize;
}

const char *lipc_shm_what(char *buf, size_t len, const char *name, long long size, int err) {
  if (err != ENOSPC) return name;
  snprintf(buf, len, "%s (size %lld bytes; shm_free: %lld bytes left in /dev/shm)", name, size,
           shm_free());
  return buf;
}

/* ---- constructors ------------------------------------------------------- */

/* Undo a half-built region (descriptor, owned name, mapping) and push
 * the error triple for err: 3. */
static int fail(lua_State *L, lipc_region *r, int err, const char *call, const char *what) {
  (void)region_release(&r->h, r->h.owns);  /* a half-made segment we created never stays */
  r->h.owns = 0;
  return lipc_error(L, err, call, what);
}

int lipc_region_shm(lua_State *L, lipc_region *r, const lipc_shm_opts *o) {
  r->kind = LIPC_REGION_POSIX;
  r->shmid = -1;
  r->writable = !o->readonly;
  if (o->name) snprintf(r->name, sizeof r->name, "%s", o->name);
  else lipc_genname(r->name, sizeof r->name, "/", "");
  int fd = -1, created = 0, tries = 0;
  int acc = o->readonly ? O_RDONLY : O_RDWR;
  lua_Integer size = o->size;
  for (;;) {
    if (o->create) {
      LIPC_FDCALL(L, fd, shm_open(r->name, acc | O_CREAT | O_EXCL | O_CLOEXEC, o->mode));
      if (fd >= 0) { created = 1; break; }
      if (errno == EEXIST && o->name == NULL && ++tries < 100) {
        /* a leftover of a killed process whose pid we reuse: next name */
        lipc_genname(r->name, sizeof r->name, "/", "");
        continue;
      }
      if (errno != EEXIST || o->excl || o->name == NULL) {
        int err = errno;
        char what[PATH_MAX + 96];
        return lipc_error(L, err, "shm_open", lipc_shm_what(what, sizeof what, r->name, size, err));
      }
    }
    LIPC_FDCALL(L, fd, shm_open(r->name, acc | O_CLOEXEC, 0));
    if (fd >= 0) break;
    if (errno != ENOENT || !o->create) return lipc_error(L, errno, "shm_open", r->name);
  }
  r->h.fd = fd;
  r->h.owns = (unsigned char)created;  /* a failure below unlinks what we created */
  size_t len;
  char what[PATH_MAX + 96];
  struct stat st;
  if (fstat(fd, &st) != 0) return fail(L, r, errno, "fstat", r->name);
  r->dev = st.st_dev;  /* the identity checked before unlinking the name */
  r->ino = st.st_ino;
  if (created) {
    int err = ftruncate(fd, (off_t)size) != 0 ? errno : 0;
    if (err != 0)
      return fail(L, r, err, "ftruncate", lipc_shm_what(what, sizeof what, r->name, size, err));
    /* reserve the pages now: ENOSPC here instead of SIGBUS on first touch */
    err = posix_fallocate(fd, 0, (off_t)size);
    if (err != 0)
      return fail(L, r, err, "posix_fallocate", lipc_shm_what(what, sizeof what, r->name, size, err));
    len = (size_t)size;
  } else {
    if (st.st_size == 0) {
      snprintf(what, sizeof what, "%s (segment has size 0)", r->name);
      return fail(L, r, EINVAL, "shm_open", what);
    }
    if (size > 0 && (lua_Integer)st.st_size < size) {
      snprintf(what, sizeof what, "%s (existing segment is %lld bytes)", r->name, (long long)st.st_size);
      return fail(L, r, EINVAL, "shm_open", what);
    }
    len = (size_t)st.st_size;
  }
  void *p = mmap(NULL, len, o->readonly ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return fail(L, r, errno, "mmap", r->name);
  r->addr = p;
  r->size = len;
  if (!o->keepfd) {
    close(fd);
    r->h.fd = -1;
  }
  return 0;
}

int lipc_region_anon(lua_State *L, lipc_region *r, size_t size) {
  r->kind = LIPC_REGION_ANON;
  r->shmid = -1;
  r->writable = 1;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return lipc_error(L, errno, "mmap", "anonymous");
  r->addr = p;
  r->size = size;
  return 0;
}

/* ipc.shm.open([name], opts): POSIX shared memory. */
static int lshm_open(lua_State *L) {
  int oidx = 2;
  if (lua_istable(L, 1) && lua_isnone(L, 2)) oidx = 1;  /* ipc.shm.open{ ... } */
  lipc_shm_opts o = { NULL, 0, 0600, 0, 0, 0, 1 };
  if (oidx == 2 && !lua_isnil(L, 1)) o.name = lipc_checkposixname(L, 1, LIPC_SHM_NAME_MAX);
  lipc_checkoptions(L, oidx, OPEN_OPTS);
  o.create = lipc_optbool(L, oidx, "create", o.name == NULL);
  o.excl = lipc_optbool(L, oidx, "excl", 0);
  int persist = lipc_optbool(L, oidx, "persist", 0);
  o.readonly = lipc_optbool(L, oidx, "readonly", 0);
  o.mode = lipc_optmode(L, oidx, "mode", 0600);
  o.size = lipc_optint(L, oidx, "size", 0, 0, (lua_Integer)(SSIZE_MAX < LUA_MAXINTEGER ? SSIZE_MAX : LUA_MAXINTEGER));
  if (o.name == NULL && !o.create) luaL_argerror(L, oidx, "a generated name needs create = true");
  if (o.create && o.size == 0) luaL_argerror(L, oidx, "option 'size': > 0 required with create = true");
  if (o.create && o.readonly) luaL_argerror(L, oidx, "readonly cannot be combined with create = true");

  lipc_region *r = lipc_new(L, &lipc_region_class, 0);
  r->h.persist = (unsigned char)persist;
  if (lipc_region_shm(L, r, &o) != 0) return 3;
  r->h.open = 1;
  return 1;
}

int lipc_shm_unlink(lua_State *L) {
  const char *name = lipc_checkposixname(L, 1, LIPC_SHM_NAME_MAX);
  if (shm_unlink(name) != 0) return lipc_error(L, errno, "shm_unlink", name);
  lua_pushboolean(L, 1);
  return 1;
}

/* ipc.shm.anonymous(size): a shared anonymous mapping. */
static int lshm_anonymous(lua_State *L) {
  size_t size = lipc_checksize(L, 1);
  luaL_argcheck(L, size > 0, 1, "size must be > 0");
  lipc_region *r = lipc_new(L, &lipc_region_class, 0);
  if (lipc_region_anon(L, r, size) != 0) return 3;
  r->h.open = 1;
  return 1;
}

/* ipc.shm.sysv(key, size, opts): shmget + shmat. */
static int lshm_sysv(lua_State *L) {
  /* a key is 32 bits: signed (as ftok and ipcs -m show it) or unsigned (0xdeadbeef) */
  key_t key = (key_t)(int32_t)(uint32_t)lipc_checkrange(L, 1, INT32_MIN, UINT32_MAX);
  size_t size = (size_t)lipc_optrange(L, 2, 0, 0, (lua_Integer)(SSIZE_MAX < LUA_MAXINTEGER ? SSIZE_MAX : LUA_MAXINTEGER));
  lipc_checkoptions(L, 3, SYSV_OPTS);
  int create = lipc_optbool(L, 3, "create", key == IPC_PRIVATE);
  int excl = lipc_optbool(L, 3, "excl", 0);
  int persist = lipc_optbool(L, 3, "persist", 0);
  int readonly = lipc_optbool(L, 3, "readonly", 0);
  mode_t mode = lipc_optmode(L, 3, "mode", 0600);
  if (create && size == 0) luaL_argerror(L, 2, "size (> 0) is required with create = true");
  if (create && readonly) luaL_argerror(L, 3, "readonly cannot be combined with create = true");
  if (key == IPC_PRIVATE && !create) luaL_argerror(L, 3, "IPC_PRIVATE always creates");

  lipc_region *r = lipc_new(L, &lipc_region_class, 0);
  r->kind = LIPC_REGION_SYSV;
  r->shmid = -1;
  r->writable = !readonly;
  r->h.persist = (unsigned char)persist;
  char what[32];
  snprintf(what, sizeof what, "key=%d", (int)key);
  int id = -1, created = 0;
  for (;;) {
    if (create) {
      id = shmget(key, size, IPC_CREAT | IPC_EXCL | (int)(mode & 0777));
      if (id >= 0) { created = 1; break; }
      if (errno != EEXIST || excl || key == IPC_PRIVATE) return lipc_error(L, errno, "shmget", what);
    }
    id = shmget(key, size, 0);
    if (id >= 0) break;
    if (errno != ENOENT || !create) return lipc_error(L, errno, "shmget", what);
  }
  r->shmid = id;
  if (created) r->h.owns = 1;
  struct shmid_ds ds;
  if (shmctl(id, IPC_STAT, &ds) != 0) return fail(L, r, errno, "shmctl", what);
  void *p = shmat(id, NULL, readonly ? SHM_RDONLY : 0);
  if (p == (void *)-1) return fail(L, r, errno, "shmat", what);
  r->addr = p;
  r->size = ds.shm_segsz;
  r->h.open = 1;
  return 1;
}

/* ipc.mmap(path, {size=, offset=, access="r"|"rw"}): map a file shared. */
static int lshm_mmap(lua_State *L) {
  size_t plen;
  const char *path = luaL_checklstring(L, 1, &plen);
  luaL_argcheck(L, plen > 0 && plen < PATH_MAX && strlen(path) == plen, 1, "bad path (empty, too long or NUL byte)");
  lipc_checkoptions(L, 2, MMAP_OPTS);
  /* access= ("mode" everywhere else means permission bits; mode= is kept as an alias) */
  const char *key = "access";
  const char *m = lipc_optstring(L, 2, key, NULL);
  const char *alias = lipc_optstring(L, 2, "mode", NULL);
  if (m != NULL && alias != NULL) return lipc_opterror(L, 2, "mode", "alias of 'access': give one of them");
  if (m == NULL) { m = alias ? alias : "r"; if (alias) key = "mode"; }
  int rw;
  if (strcmp(m, "r") == 0) rw = 0;
  else if (strcmp(m, "rw") == 0) rw = 1;
  else return lipc_opterror(L, 2, key, "\"r\" or \"rw\" expected");
  lua_Integer maxi = (lua_Integer)(SSIZE_MAX < LUA_MAXINTEGER ? SSIZE_MAX : LUA_MAXINTEGER);
  lua_Integer size = lipc_optint(L, 2, "size", -1, 1, maxi);
  lua_Integer off = lipc_optint(L, 2, "offset", 0, 0, maxi);
  long page = sysconf(_SC_PAGESIZE);
  if (off % page != 0)
    luaL_argerror(L, 2, lua_pushfstring(L, "option 'offset': a multiple of the page size (%d) expected", (int)page));

  lipc_region *r = lipc_new(L, &lipc_region_class, 0);
  r->kind = LIPC_REGION_FILE;
  r->shmid = -1;
  r->writable = rw;
  snprintf(r->name, sizeof r->name, "%s", path);
  int fd;
  /* O_NONBLOCK: opening a FIFO (or a device that waits for a carrier)
   * must not block, and a FIFO is refused below anyway */
  LIPC_FDCALL(L, fd, open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (fd < 0) return lipc_error(L, errno, "open", path);
  r->h.fd = fd;
  struct stat st;
  if (fstat(fd, &st) != 0) return fail(L, r, errno, "fstat", path);
  char what[PATH_MAX + 96];
  long long end;  /* bytes that can be mapped */
  if (S_ISREG(st.st_mode)) {
    end = (long long)st.st_size;
  } else if (S_ISBLK(st.st_mode)) {
    uint64_t bytes = 0;
    if (ioctl(fd, BLKGETSIZE64, &bytes) != 0) return fail(L, r, errno, "ioctl BLKGETSIZE64", path);
    end = bytes > (uint64_t)LLONG_MAX ? LLONG_MAX : (long long)bytes;
  } else {
    const char *type = S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISSOCK(st.st_mode) ? "a socket"
                     : S_ISDIR(st.st_mode) ? "a directory" : S_ISCHR(st.st_mode) ? "a character device"
                     : "not a regular file";
    snprintf(what, sizeof what, "%s (%s: only regular files and block devices can be mapped)", path, type);
    return fail(L, r, ENODEV, "mmap", what);
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) return fail(L, r, errno, "fcntl", path);
  /* never map past the end of the file: touching that page is SIGBUS */
  if (size < 0) size = (lua_Integer)(end - off);
  if (size <= 0 || size > (lua_Integer)(end - off)) {
    snprintf(what, sizeof what, "%s (offset + size beyond the end of the %s, %lld bytes)", path,
             S_ISREG(st.st_mode) ? "file" : "device", end);
    return fail(L, r, EINVAL, "mmap", what);
  }
  void *p = mmap(NULL, (size_t)size, rw ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, (off_t)off);
  if (p == MAP_FAILED) return fail(L, r, errno, "mmap", path);
  r->addr = p;
  r->size = (size_t)size;
  r->h.open = 1;
  return 1;
}

/* ---- methods ------------------------------------------------------------ */

/* #r: the size in bytes. */
static int lshm_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lipc_region_check(L, 1)->size);
  return 1;
}

/* r:read([offset [, len]]): bytes as a string (default: to the end). */
static int lshm_read(lua_State *L) {
  lipc_region *r = fast_region(L);
  size_t len;
  size_t off = span(L, r, 2, 3, &len);
  lua_pushlstring(L, (const char *)r->addr + off, len);
  return 1;
}

/* r:write(offset, str): copy str in; returns the offset after it. */
static int lshm_write(lua_State *L) {
  lipc_region *r = fast_region(L);
  lua_Integer off = lipc_checkrange(L, 2, 0, LUA_MAXINTEGER);
  size_t len;
  const char *s = luaL_checklstring(L, 3, &len);
  if ((size_t)off > r->size || len > r->size - (size_t)off)
    luaL_argerror(L, 3, lua_pushfstring(L, "offset %I + %I bytes outside the region (%I bytes)", off,
                                        (lua_Integer)len, (lua_Integer)r->size));
  if (!r->writable) return luaL_error(L, "lipc.region is mapped read-only");
  lipc_region_guard(L, r, 2, (size_t)off, len);
  memcpy(r->addr + off, s, len);
  lua_pushinteger(L, off + (lua_Integer)len);
  return 1;
}

/* r:fill(byte [, offset [, len]]): memset; returns the offset after. */
static int lshm_fill(lua_State *L) {
  lipc_region *r = lipc_region_check(L, 1);
  int byte = (int)lipc_checkrange(L, 2, 0, 255);
  size_t len;
  size_t off = span(L, r, 3, 4, &len);
  if (!r->writable) return luaL_error(L, "lipc.region is mapped read-only");
  lipc_region_guard(L, r, 3, off, len);
  memset(r->addr + off, byte, len);
  lua_pushinteger(L, (lua_Integer)(off + len));
  return 1;
}

/* r:add(offset, n): atomic fetch-and-add; returns the new value. */
static int lshm_add(lua_State *L) {
  int64_t *p = atomic_at(L, 1);
  int64_t n = (int64_t)luaL_checkinteger(L, 3);
  /* wraps like C unsigned arithmetic; the builtin is defined on overflow */
  lua_pushinteger(L, (lua_Integer)__atomic_add_fetch(p, n, __ATOMIC_SEQ_CST));
  return 1;
}

/* r:load(offset): atomic 64-bit load. */
static int lshm_load(lua_State *L) {
  int64_t *p = atomic_at(L, 0);
  lua_pushinteger(L, (lua_Integer)__atomic_load_n(p, __ATOMIC_SEQ_CST));
  return 1;
}

/* r:store(offset, v): atomic 64-bit store. */
static int lshm_store(lua_State *L) {
  int64_t *p = atomic_at(L, 1);
  int64_t v = (int64_t)luaL_checkinteger(L, 3);
  __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
  lua_pushboolean(L, 1);
  return 1;
}

/* r:cas(offset, expected, new): true | false, current. */
static int lshm_cas(lua_State *L) {
  int64_t *p = atomic_at(L, 1);
  int64_t expected = (int64_t)luaL_checkinteger(L, 3);
  int64_t desired = (int64_t)luaL_checkinteger(L, 4);
  if (__atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_pushinteger(L, (lua_Integer)expected);
  return 2;
}

/* r:sync([async]): msync the whole mapping. */
static int lshm_sync(lua_State *L) {
  lipc_region *r = lipc_region_check(L, 1);
  int async = lua_toboolean(L, 2);
  if (msync(r->addr, r->size, async ? MS_ASYNC : MS_SYNC) != 0)
    return lipc_error(L, errno, "msync", r->name[0] ? r->name : NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* r:unlink(): remove the POSIX name now (the mapping stays). */
static int lshm_runlink(lua_State *L) {
  lipc_region *r = lipc_region_check(L, 1);
  if (r->kind != LIPC_REGION_POSIX) return luaL_error(L, "unlink: not a POSIX shared memory region (use remove for System V)");
  return lipc_region_unlink(L, r);
}

int lipc_region_unlink(lua_State *L, lipc_region *r) {
  if (shm_unlink(r->name) != 0) return lipc_error(L, errno, "shm_unlink", r->name);
  r->h.owns = 0;
  lua_pushboolean(L, 1);
  return 1;
}

/* r:remove(): IPC_RMID the System V segment now (destroyed at last detach). */
static int lshm_remove(lua_State *L) {
  lipc_region *r = lipc_region_check(L, 1);
  if (r->kind != LIPC_REGION_SYSV) return luaL_error(L, "remove: not a System V segment (use unlink for POSIX)");
  if (shmctl(r->shmid, IPC_RMID, NULL) != 0) return lipc_error(L, errno, "shmctl IPC_RMID", NULL);
  r->h.owns = 0;
  lua_pushboolean(L, 1);
  return 1;
}

/* r:name(): POSIX name or file path, nil for anonymous/System V. */
static int lshm_name(lua_State *L) {
  lipc_region *r = lipc_region_check(L, 1);
  if (r->name[0]) lua_pushstring(L, r->name);
  else lua_pushnil(L);
  return 1;
}

/* r:id(): System V shmid, nil otherwise. */
static int lshm_id(lua_State *L) {
  lipc_region *r = lipc_region_check(L, 1);
  if (r->kind == LIPC_REGION_SYSV) lua_pushinteger(L, r->shmid);
  else lua_pushnil(L);
  return 1;
}

/* r:kind(): "posix", "anonymous", "sysv" or "file". */
static int lshm_kind(lua_State *L) {
  static const char *const kinds[] = { "", "posix", "anonymous", "sysv", "file" };
  lua_pushstring(L, kinds[lipc_region_check(L, 1)->kind]);
  return 1;
}

/* Hot methods: closures over the region metatable (see fast_region). */
static const luaL_Reg methods[] = {
  {"read", lshm_read},
  {"write", lshm_write},
  {"add", lshm_add},
  {"load", lshm_load},
  {"store", lshm_store},
  {"cas", lshm_cas},
  {"fill", lshm_fill},
  {"sync", lshm_sync},
  {"unlink", lshm_runlink},
  {"remove", lshm_remove},
  {"name", lshm_name},
  {"id", lshm_id},
  {"kind", lshm_kind},
  {"fileno", lipc_m_fileno},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"open", lshm_open},
  {"anonymous", lshm_anonymous},
  {"sysv", lshm_sysv},
  {"unlink", lipc_shm_unlink},
  {NULL, NULL}
};

void lipc_open_shm(lua_State *L) {
  lipc_register(L, &lipc_region_class, methods);
  luaL_getmetatable(L, lipc_region_class.name);
  lua_pushcfunction(L, lshm_len);
  lua_setfield(L, -2, "__len");
  lua_pop(L, 1);  /* pack and unpack: lua/lipc/region.lua */
  lipc_subtable(L, -1, "shm");
  luaL_setfuncs(L, funcs, 0);
  lua_pop(L, 1);
  lua_pushcfunction(L, lshm_mmap);
  lua_setfield(L, -2, "mmap");
}
