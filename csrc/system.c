/*
 * system.c - process-wide facts: ipc.errno, ipc.limits(), ipc.sweep().
 */
#include "core.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <mqueue.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

static const lipc_const ERRNOS[] = {
#include "errno_names.h"
  {NULL, 0}
};

/* The field-th integer of a /proc file, or def. */
long long lipc_proc_value(const char *path, int field, long long def) {
  FILE *f = fopen(path, "re");
  if (f == NULL) return def;
  long long v = def;
  for (int i = 0; i <= field; i++)
    if (fscanf(f, "%lld", &v) != 1) { v = def; break; }
  fclose(f);
  return v;
}

/* A limit from /proc, -1 when it cannot be read. */
static long long read_proc(const char *path, int field) {
  return lipc_proc_value(path, field, -1);
}

static void set_limit(lua_State *L, const char *key, long long v) {
  if (v < 0) return;
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, key);
}

/* ipc.limits(): the kernel limits that bite. */
static int l_limits(lua_State *L) {
  lua_newtable(L);
  set_limit(L, "mq_maxmsg", read_proc("/proc/sys/fs/mqueue/msg_max", 0));
  set_limit(L, "mq_msgsize", read_proc("/proc/sys/fs/mqueue/msgsize_max", 0));
  set_limit(L, "mq_queues", read_proc("/proc/sys/fs/mqueue/queues_max", 0));
  set_limit(L, "msgmax", read_proc("/proc/sys/kernel/msgmax", 0));
  set_limit(L, "msgmnb", read_proc("/proc/sys/kernel/msgmnb", 0));
  set_limit(L, "msgmni", read_proc("/proc/sys/kernel/msgmni", 0));
  set_limit(L, "shmmax", read_proc("/proc/sys/kernel/shmmax", 0));
  set_limit(L, "shmall", read_proc("/proc/sys/kernel/shmall", 0));
  set_limit(L, "shmmni", read_proc("/proc/sys/kernel/shmmni", 0));
  set_limit(L, "semmsl", read_proc("/proc/sys/kernel/sem", 0));
  set_limit(L, "semmns", read_proc("/proc/sys/kernel/sem", 1));
  set_limit(L, "semopm", read_proc("/proc/sys/kernel/sem", 2));
  set_limit(L, "semmni", read_proc("/proc/sys/kernel/sem", 3));
  set_limit(L, "pipe_max_size", read_proc("/proc/sys/fs/pipe-max-size", 0));
  struct statvfs vfs;
  if (statvfs("/dev/shm", &vfs) == 0)
    set_limit(L, "shm_free", (long long)vfs.f_bavail * (long long)vfs.f_frsize);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
    set_limit(L, "nofile", rl.rlim_cur == RLIM_INFINITY ? LLONG_MAX : (long long)rl.rlim_cur);
  if (getrlimit(RLIMIT_MSGQUEUE, &rl) == 0)
    set_limit(L, "msgqueue_bytes", rl.rlim_cur == RLIM_INFINITY ? LLONG_MAX : (long long)rl.rlim_cur);
  set_limit(L, "pipe_buf", PIPE_BUF);
  return 1;
}

/* The creator pid of a generated name "lipc.<pid>.<n><suffix>", or 0. */
static pid_t generated_pid(const char *name, const char *suffix) {
  if (strncmp(name, "lipc.", 5) != 0) return 0;
  char *end;
  long pid = strtol(name + 5, &end, 10);
  if (end == name + 5 || *end != '.' || pid <= 0) return 0;
  char *end2;
  (void)strtoul(end + 1, &end2, 10);
  if (end2 == end + 1 || strcmp(end2, suffix) != 0) return 0;
  return (pid_t)pid;
}

/* 1 when no process with that pid runs (in this pid namespace). */
static int dead(pid_t pid) {
  return pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH;
}

/* Push "<kind>:<name>" as the next item of the list at -2. */
static void add_removed(lua_State *L, const char *kind, const char *name) {
  lua_pushfstring(L, "%s:%s", kind, name);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

/* Remove dead generated entries of one directory. */
static void sweep_dir(lua_State *L, const char *dir, const char *prefix, const char *suffix,
                      const char *kind) {
  DIR *d = opendir(dir);
  if (d == NULL) return;
  struct dirent *e;
  size_t plen = strlen(prefix);
  char path[PATH_MAX];
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, prefix, plen) != 0) continue;
    const char *gen = e->d_name + plen;
    pid_t pid = generated_pid(gen, suffix);
    if (pid == 0 || !dead(pid)) continue;
    int rc;
    if (strcmp(kind, "shm") == 0) {
      snprintf(path, sizeof path, "/%s", gen);
      rc = shm_unlink(path);
    } else if (strcmp(kind, "sem") == 0) {
      snprintf(path, sizeof path, "/%s", gen);
      rc = sem_unlink(path);
    } else if (strcmp(kind, "mq") == 0) {
      snprintf(path, sizeof path, "/%s", gen);
      rc = mq_unlink(path);
    } else {
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      rc = unlink(path);
    }
    if (rc == 0) add_removed(L, kind, path);
  }
  closedir(d);
}

/* The directory generated Unix socket paths go to. */
const char *lipc_tmpdir(void) {
  const char *t = getenv("TMPDIR");
  return (t && *t == '/') ? t : "/tmp";
}

/* ipc.sweep(): remove generated names whose creating process is gone. */
static int l_sweep(lua_State *L) {
  lua_newtable(L);
  sweep_dir(L, "/dev/shm", "", "", "shm");
  sweep_dir(L, "/dev/shm", "sem.", "", "sem");
  sweep_dir(L, "/dev/mqueue", "", "", "mq");
  sweep_dir(L, lipc_tmpdir(), "", ".sock", "unix");
  sweep_dir(L, lipc_tmpdir(), "", ".fifo", "fifo");
  return 1;
}

/* ipc.descriptors(): sorted list of this process's open descriptors. */
static int l_descriptors(lua_State *L) {
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) return lipc_error(L, errno, "opendir", "/proc/self/fd");
  int self = dirfd(d);
  int fds[4096], n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL && n < 4096) {
    if (e->d_name[0] == '.') continue;
    int fd = atoi(e->d_name);
    if (fd != self) fds[n++] = fd;
  }
  closedir(d);
  for (int i = 1; i < n; i++)  /* insertion sort: short lists */
    for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) { int t = fds[j]; fds[j] = fds[j - 1]; fds[j - 1] = t; }
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushinteger(L, fds[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* ipc.children(): pids whose parent is this process (zombies included). */
static int l_children(lua_State *L) {
  DIR *d = opendir("/proc");
  if (d == NULL) return lipc_error(L, errno, "opendir", "/proc");
  pid_t me = getpid();
  lua_newtable(L);
  int n = 0;
  struct dirent *e;
  char path[300], buf[512];
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0) continue;
    buf[len] = '\0';
    char *p = strrchr(buf, ')');  /* the command name may hold spaces */
    char state;
    long ppid;
    if (p == NULL || sscanf(p + 1, " %c %ld", &state, &ppid) != 2) continue;
    if (ppid == (long)me) {
      lua_pushinteger(L, atol(e->d_name));
      lua_rawseti(L, -2, ++n);
    }
  }
  closedir(d);
  return 1;
}

/* ipc.clock(): seconds on CLOCK_MONOTONIC, as a float (for measuring). */
static int l_clock(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
  return 1;
}

void lipc_open_system(lua_State *L) {
  lua_pushcfunction(L, l_clock);
  lua_setfield(L, -2, "clock");
  lua_pushcfunction(L, l_descriptors);
  lua_setfield(L, -2, "descriptors");
  lua_pushcfunction(L, l_children);
  lua_setfield(L, -2, "children");
  lipc_subtable(L, -1, "errno");
  lipc_setconsts(L, ERRNOS);
  lua_pop(L, 1);
  lua_pushcfunction(L, l_limits);
  lua_setfield(L, -2, "limits");
  lua_pushcfunction(L, l_sweep);
  lua_setfield(L, -2, "sweep");
}

/* ---- audit: housekeeping beside sweep and limits ----------------------- */

/* ipc.audit(): the live open objects of this process. */
static int l_audit(lua_State *L) {
  lua_newtable(L);
  int n = 0;
  lua_getfield(L, LUA_REGISTRYINDEX, LIPC_LIVE_KEY);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_pop(L, 1);
    lipc_handle *h = lipc_toany(L, -1);
    if (h == NULL || !h->open) continue;
    lua_newtable(L);
    lua_pushstring(L, h->cls->kind);
    lua_setfield(L, -2, "kind");
    lua_pushboolean(L, h->owns && h->owner == getpid());
    lua_setfield(L, -2, "owner");
    if (h->cls->audit) {
      h->cls->audit(L, h);
    } else if (h->fd >= 0) {
      lua_pushinteger(L, h->fd);
      lua_setfield(L, -2, "fd");
    }
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "object");
    lua_rawseti(L, -4, ++n);
  }
  lua_pop(L, 1);
  return 1;
}

/* Add ipc.audit to the module table on top. */
void lipc_open_audit(lua_State *L) {
  lua_pushcfunction(L, l_audit);
  lua_setfield(L, -2, "audit");
}
