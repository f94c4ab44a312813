/*
 * system.c - process-wide facts: ipc.errno, ipc.limits(), ipc.sweep().
 */
#include "core.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static const lipc_const ERRNOS[] = {
#include "errno_names.h"
  {NULL, 0}
};

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

/* ---- generated names: who made them, and sweeping their leftovers ------- */

/* Field 22 of /proc/<pid>/stat, the start time in clock ticks after boot
 * ("self" for this process): 0 and *start, or an errno value. */
static int proc_start(const char *pid, unsigned long long *start) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%s/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  int err = n < 0 ? errno : 0;
  close(fd);
  if (n <= 0) return n < 0 ? err : EIO;
  buf[n] = '\0';
  char *p = strrchr(buf, ')');  /* the command name may hold spaces and ')' */
  if (p == NULL) return EIO;
  /* field 3 (the state) follows ") "; skip it and the 18 after it */
  p++;
  for (int field = 3; field < 22; field++) {
    p += strspn(p, " ");
    p += strcspn(p, " ");
  }
  char *end;
  errno = 0;
  *start = strtoull(p, &end, 10);
  return (end == p || errno != 0) ? EIO : 0;
}

/* The identity a generated name records and sweep compares. */
typedef struct creator {
  long pid;
  unsigned long long start;  /* 0: unknown */
  unsigned long long pidns;  /* inode of the pid namespace; 0: unknown */
  char boot[5];              /* first 4 hex digits of the boot id; "": unknown */
} creator;

/* The first 4 characters of this boot's id, "" when unreadable. */
static void read_boot(char boot[5]) {
  boot[0] = '\0';
  int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[4];
  ssize_t n = read(fd, buf, 4);
  close(fd);
  if (n != 4) return;
  for (int i = 0; i < 4; i++)
    if (!isxdigit((unsigned char)buf[i])) return;
  for (int i = 0; i < 4; i++) boot[i] = (char)tolower((unsigned char)buf[i]);
  boot[4] = '\0';
}

/* The inode of this process's pid namespace, 0 when unknown. */
static unsigned long long read_pidns(void) {
  struct stat st;
  return stat("/proc/self/ns/pid", &st) == 0 ? (unsigned long long)st.st_ino : 0;
}

const char *lipc_creator_tag(void) {
  static char tag[64];
  static pid_t tag_pid;
  pid_t pid = getpid();
  if (tag_pid != pid) {  /* once per process: a forked child is another creator */
    unsigned long long start = 0;
    char boot[5];
    if (proc_start("self", &start) != 0) start = 0;
    read_boot(boot);
    snprintf(tag, sizeof tag, "%llx-%llx-%s", start, read_pidns(), boot[0] ? boot : "0");
    tag_pid = pid;
  }
  return tag;
}

/* n random bytes: getrandom(2), else /dev/urandom, else the clock (then
 * unique with the retry on EEXIST, but guessable). */
static void name_random(unsigned char *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(buf + got, n - got, 0);
    if (r > 0) got += (size_t)r;
    else if (r < 0 && errno != EINTR) break;
  }
  if (got == n) return;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t r = read(fd, buf, n);
    close(fd);
    if (r == (ssize_t)n) return;
  }
  static unsigned counter;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  unsigned long long x = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)ts.tv_sec << 30) ^ ++counter;
  for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)(x >> (8 * (i % 8)));
}

void lipc_genname(char *buf, size_t len, const char *prefix, const char *suffix) {
  unsigned char r[4];
  name_random(r, sizeof r);
  snprintf(buf, len, "%slipc.%ld.%s-%02x%02x%02x%02x%s", prefix, (long)getpid(), lipc_creator_tag(),
           r[0], r[1], r[2], r[3], suffix);
}


/* Lowercase hex digits at *p, at least 1 and at most max: 1 with the value
 * in *v and *p past them, or 0. */
static int hexfield(const char **p, int max, unsigned long long *v) {
  int n = 0;
  *v = 0;
  while (n < max && (isdigit((unsigned char)(*p)[n]) || ((*p)[n] >= 'a' && (*p)[n] <= 'f'))) {
    *v = *v * 16 + (unsigned)(isdigit((unsigned char)(*p)[n]) ? (*p)[n] - '0' : (*p)[n] - 'a' + 10);
    n++;
  }
  *p += n;
  return n > 0;
}

/* The creator of a generated name "lipc.<pid>.<start>-<pidns>-<boot>-<random><suffix>"
 * (as lipc_genname writes it with lipc_creator_tag): 1 and *c, or 0. */
static int parse_generated(const char *name, const char *suffix, creator *c) {
  if (strncmp(name, "lipc.", 5) != 0 || !isdigit((unsigned char)name[5])) return 0;
  char *end;
  errno = 0;
  long pid = strtol(name + 5, &end, 10);
  if (errno != 0 || pid <= 0 || pid > INT_MAX || *end != '.') return 0;
  const char *p = end + 1;
  unsigned long long boot, rnd;
  if (!hexfield(&p, 16, &c->start) || *p++ != '-') return 0;
  if (!hexfield(&p, 16, &c->pidns) || *p++ != '-') return 0;
  const char *b = p;
  if (!hexfield(&p, 4, &boot) || *p++ != '-') return 0;
  if (p - b == 5) memcpy(c->boot, b, 4), c->boot[4] = '\0';
  else if (p - b == 2 && b[0] == '0') c->boot[0] = '\0';
  else return 0;
  const char *r = p;
  if (!hexfield(&p, 8, &rnd) || p - r != 8 || strcmp(p, suffix) != 0) return 0;
  c->pid = pid;
  return 1;
}

/* What sweep knows of itself. */
typedef struct sweeper {
  creator me;       /* pid namespace and boot (pid and start unused) */
  int proc_ours;    /* /proc shows our pid namespace */
  uid_t uid;
  int dry;          /* list what would be removed, remove nothing */
} sweeper;

/* 1 when /proc is of this process's pid namespace, so that /proc/<pid>
 * describes the process we call pid (not so after unshare --pid without a
 * new /proc). */
static int proc_is_ours(void) {
  char buf[32];
  ssize_t n = readlink("/proc/self", buf, sizeof buf - 1);
  if (n <= 0) return 0;
  buf[n] = '\0';
  if (atol(buf) != (long)getpid()) return 0;
  FILE *f = fopen("/proc/self/status", "re");
  if (f == NULL) return 0;
  char line[256];
  int ours = 1;  /* kernels before 4.1 have no NSpid: the pid matched */
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, "NSpid:", 6) != 0) continue;
    /* one pid per level from /proc's namespace down to ours: one = same */
    char *save, *tok = strtok_r(line + 6, " \t\n", &save);
    int levels = 0;
    for (; tok != NULL; tok = strtok_r(NULL, " \t\n", &save)) levels++;
    ours = levels == 1;
    break;
  }
  fclose(f);
  return ours;
}

/* 1 when the creator of a generated name provably no longer runs: it ran
 * in an earlier boot, or in our pid namespace and its pid is free or now
 * names a process that started at another time.  A creator in another (or
 * an unknown) pid namespace is never judged gone. */
static int creator_gone(const sweeper *s, const creator *c) {
  if (c->boot[0] && s->me.boot[0] && strcmp(c->boot, s->me.boot) != 0) return 1;
  if (c->pidns == 0 || c->pidns != s->me.pidns) return 0;
  if (kill((pid_t)c->pid, 0) != 0) return errno == ESRCH;  /* EPERM: it runs */
  if (c->start == 0 || !s->proc_ours) return 0;
  char pid[24];
  snprintf(pid, sizeof pid, "%ld", c->pid);
  unsigned long long start;
  int err = proc_start(pid, &start);
  if (err == ENOENT || err == ESRCH) return 1;  /* ended and reaped meanwhile */
  return err == 0 && start != c->start;
}

/* Push "<kind>:<name>" as the next item of the list at -2. */
static void add_removed(lua_State *L, const char *kind, const char *name) {
  lua_pushfstring(L, "%s:%s", kind, name);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

/* One kind of generated name in a directory: entries "<prefix><generated
 * name><suffix>" of file type type; reported as "<kind>:/<generated name>"
 * (posix) or "<kind>:<dir>/<entry>". */
typedef struct sweep_kind {
  const char *prefix, *suffix;
  mode_t type;
  const char *kind;
  int posix;
} sweep_kind;

static const sweep_kind SHM_KINDS[] = {
  {"sem.", "", S_IFREG, "sem", 1},
  {"", "", S_IFREG, "shm", 1},
  {NULL, NULL, 0, NULL, 0}
};
static const sweep_kind MQ_KINDS[] = {
  {"", "", S_IFREG, "mq", 1},
  {NULL, NULL, 0, NULL, 0}
};
static const sweep_kind TMP_KINDS[] = {
  {"", ".sock", S_IFSOCK, "unix", 0},
  {"", ".fifo", S_IFIFO, "fifo", 0},
  {NULL, NULL, 0, NULL, 0}
};

/* Remove the entries of dir that lipc made (one of kinds, the right file
 * type, owned by us) and whose creator is gone.  Never follows a symlink;
 * the entry is checked again (device and inode) just before the unlink. */
static void sweep_dir(lua_State *L, const sweeper *s, const char *dir, const sweep_kind *kinds) {
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return;
  DIR *d = fdopendir(dfd);
  if (d == NULL) { close(dfd); return; }
  struct dirent *e;
  char shown[PATH_MAX + 8];
  while ((e = readdir(d)) != NULL) {
    const sweep_kind *k;
    creator c;
    for (k = kinds; k->kind; k++) {
      size_t plen = strlen(k->prefix);
      if (strncmp(e->d_name, k->prefix, plen) == 0 && parse_generated(e->d_name + plen, k->suffix, &c))
        break;
    }
    if (k->kind == NULL) continue;
    struct stat st, now;
    if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if ((st.st_mode & S_IFMT) != k->type || st.st_uid != s->uid) continue;
    if (!creator_gone(s, &c)) continue;
    if (fstatat(dfd, e->d_name, &now, AT_SYMLINK_NOFOLLOW) != 0 || now.st_dev != st.st_dev ||
        now.st_ino != st.st_ino || (now.st_mode & S_IFMT) != k->type || now.st_uid != s->uid)
      continue;
    if (!s->dry && unlinkat(dfd, e->d_name, 0) != 0) continue;
    if (k->posix) snprintf(shown, sizeof shown, "/%s", e->d_name + strlen(k->prefix));
    else snprintf(shown, sizeof shown, "%s/%s", dir, e->d_name);
    add_removed(L, k->kind, shown);
  }
  closedir(d);
}

/* Undo the octal escapes (\040 for a space) of a /proc/self/mountinfo field, in place. */
static void unescape_mount(char *s) {
  char *out = s;
  for (; *s; s++) {
    if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
        s[3] >= '0' && s[3] <= '7') {
      *out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
      s += 3;
    } else {
      *out++ = *s;
    }
  }
  *out = '\0';
}

#define MQ_MOUNTS 4

/* The mount points of the mqueue file system in this mount namespace
 * (/proc/self/mountinfo), one per file system: how many (at most
 * MQ_MOUNTS) were written to dirs. */
static int mqueue_mounts(char dirs[][PATH_MAX]) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (f == NULL) return 0;
  int n = 0;
  dev_t devs[MQ_MOUNTS];
  char line[4096];
  while (n < MQ_MOUNTS && fgets(line, sizeof line, f) != NULL) {
    if (strchr(line, '\n') == NULL) {  /* longer than the buffer: not a mqueue mount's */
      int ch;
      while ((ch = fgetc(f)) != EOF && ch != '\n') {}
      continue;
    }
    /* "id parent major:minor root mountpoint options... - fstype source superoptions" */
    char *sep = strstr(line, " - ");
    if (sep == NULL || strncmp(sep + 3, "mqueue ", 7) != 0) continue;
    *sep = '\0';
    char *save, *field = strtok_r(line, " ", &save);
    for (int i = 0; field != NULL && i < 4; i++) field = strtok_r(NULL, " ", &save);
    if (field == NULL) continue;
    unescape_mount(field);
    struct stat st;
    if (stat(field, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    int seen = 0;
    for (int i = 0; i < n; i++) seen |= devs[i] == st.st_dev;
    if (seen) continue;
    devs[n] = st.st_dev;
    snprintf(dirs[n++], PATH_MAX, "%s", field);
  }
  fclose(f);
  return n;
}

/* lstat name through a mount of the mqueue file system on device dev. */
int lipc_mqueue_lstat(const char *name, dev_t dev, struct stat *st) {
  char dirs[MQ_MOUNTS][PATH_MAX], path[PATH_MAX + NAME_MAX + 2];
  int n = mqueue_mounts(dirs);
  for (int i = 0; i < n; i++) {
    struct stat d;
    if (stat(dirs[i], &d) != 0 || d.st_dev != dev) continue;
    size_t dl = strlen(dirs[i]), nl = strlen(name);
    if (dl + nl + 1 > sizeof path) return ENAMETOOLONG;
    memcpy(path, dirs[i], dl);
    memcpy(path + dl, name, nl + 1);
    return lstat(path, st) == 0 ? 0 : errno;
  }
  return ENODEV;
}

/* The directory generated Unix socket paths go to. */
const char *lipc_tmpdir(void) {
  const char *t = getenv("TMPDIR");
  return (t && *t == '/') ? t : "/tmp";
}

/* ipc.sweep([{dry_run = bool}]): remove generated names whose creating
 * process is gone (dry_run: only list them). */
static int l_sweep(lua_State *L) {
  static const char *const opts[] = {"dry_run", NULL};
  lipc_checkoptions(L, 1, opts);
  sweeper s;
  memset(&s, 0, sizeof s);
  s.dry = lipc_optbool(L, 1, "dry_run", 0);
  s.me.pidns = read_pidns();
  read_boot(s.me.boot);
  s.proc_ours = proc_is_ours();
  s.uid = geteuid();
  char mqdirs[MQ_MOUNTS][PATH_MAX];
  int nmq = mqueue_mounts(mqdirs);
  lua_newtable(L);
  sweep_dir(L, &s, "/dev/shm", SHM_KINDS);
  for (int i = 0; i < nmq; i++) sweep_dir(L, &s, mqdirs[i], MQ_KINDS);
  sweep_dir(L, &s, lipc_tmpdir(), TMP_KINDS);
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
