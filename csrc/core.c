/*
 * core.c - the handle type, class registration, errors, argument checks and
 * timeouts shared by every lipc family.  Nothing family-specific lives here.
 */
#include "core.h"

#include <ctype.h>
#include <stdarg.h>
#include <pthread.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Registry key of the table C function -> name for argument errors. */
static const char NAMES_KEY[] = "lipc.names";

/* Set when a Ctrl-C was noticed while a coroutine waited: the next
 * lipc_error(L, EINTR, ...) raises "interrupted!" in that coroutine, as
 * the main thread's hook would. */
static LIPC_TLS int coroutine_interrupt;

/* ---- handles and classes ---------------------------------------------- */

/* Raise the standard use-after-close error. */
int lipc_closed_error(lua_State *L, const lipc_class *cls) {
  return luaL_error(L, "attempt to use a closed %s", cls->name);
}

/* Every class lipc_register has seen: a handle's class pointer is compared
 * with these, never followed, before the handle is trusted. */
#define MAX_CLASSES 64
static const lipc_class *classes[MAX_CLASSES];

/* 1 when c is a registered class (pointer comparisons only). */
static int is_class(const lipc_class *c) {
  for (int i = 0; i < MAX_CLASSES && classes[i]; i++)
    if (classes[i] == c) return 1;
  return 0;
}

/* The one class check.  lipc_new stamps the class pointer into the first
 * bytes of every handle, which no Lua code can write: a userdata big
 * enough for the class whose first word is that pointer was made as that
 * class.  The metatable plays no part (debug.setmetatable can move one onto
 * any userdata), and the check costs two Lua API calls: comparing the
 * metatable with an upvalue as well measured ~150 instructions more per
 * call, ~8% of a pipe round trip. */
static lipc_handle *handle_of(lua_State *L, int idx, size_t size) {
  lipc_handle *h = lua_touserdata(L, idx);
  if (h == NULL || lua_rawlen(L, idx) < size) return NULL;  /* light userdata: 0 */
  return h;
}

/* Any lipc handle at idx, open or closed, or NULL. */
lipc_handle *lipc_toany(lua_State *L, int idx) {
  lipc_handle *h = handle_of(L, idx, sizeof(lipc_handle));
  if (h == NULL || !is_class(h->cls) || lua_rawlen(L, idx) < h->cls->size) return NULL;
  return h;
}

/* The handle at idx of class cls, open or closed; raises otherwise. */
void *lipc_checkclass(lua_State *L, int idx, const lipc_class *cls) {
  lipc_handle *h = handle_of(L, idx, cls->size);
  if (h == NULL || h->cls != cls) luaL_typeerror(L, idx, cls->name);
  return h;
}

/* The open handle at idx of class cls; raises otherwise. */
void *lipc_check(lua_State *L, int idx, const lipc_class *cls) {
  lipc_handle *h = lipc_checkclass(L, idx, cls);
  if (!h->open) lipc_closed_error(L, cls);
  return h;
}

/* An open lipc handle with a descriptor at idx; raises otherwise. */
lipc_handle *lipc_checkany(lua_State *L, int idx) {
  lipc_handle *h = lipc_toany(L, idx);
  if (h == NULL) luaL_typeerror(L, idx, "lipc object");
  if (!h->open) lipc_closed_error(L, h->cls);
  if (h->fd < 0)
    luaL_argerror(L, idx, lua_pushfstring(L, "%s has no descriptor", h->cls->name));
  return h;
}

/* A descriptor: an open lipc object's, or a plain integer >= 0. */
int lipc_checkfd(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TNUMBER)
    return (int)lipc_checkrange(L, idx, 0, INT_MAX);
  return lipc_checkany(L, idx)->fd;
}

/* Release h once: mark closed first, then let the class free it. */
int lipc_release(lipc_handle *h) {
  if (!h->open) return 0;
  h->open = 0;
  int remove_name = h->owns && !h->persist && h->owner == getpid();
  if (h->cls->release) return h->cls->release(h, remove_name);
  int err = 0;
  if (h->fd >= 0 && close(h->fd) != 0) err = errno;
  h->fd = -1;
  return err;
}

/* close(): idempotent, true or the error triple. */
static int m_close(lua_State *L) {
  lipc_handle *h = lipc_toany(L, 1);
  if (h == NULL) return luaL_typeerror(L, 1, "lipc object");
  int err = lipc_release(h);
  if (err != 0) return lipc_error(L, err, "close", h->cls->kind);
  lua_pushboolean(L, 1);
  return 1;
}

/* __gc and __close: release, never raise. */
static int m_gc(lua_State *L) {
  lipc_handle *h = lipc_toany(L, 1);
  if (h != NULL) (void)lipc_release(h);
  return 0;
}

/* __tostring: "lipc.pipe(fd=5, read)" or "lipc.pipe(closed)". */
static int m_tostring(lua_State *L) {
  lipc_handle *h = lipc_toany(L, 1);
  if (h == NULL) return luaL_typeerror(L, 1, "lipc object");
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, h->cls->name);
  luaL_addchar(&b, '(');
  if (!h->open) {
    luaL_addstring(&b, "closed");
  } else if (h->cls->describe) {
    h->cls->describe(h, &b);
  } else {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "fd=%d", h->fd);
    luaL_addstring(&b, tmp);
  }
  luaL_addchar(&b, ')');
  luaL_pushresult(&b);
  return 1;
}

/* fileno(): the descriptor. */
int lipc_m_fileno(lua_State *L) {
  lipc_handle *h = lipc_toany(L, 1);
  if (h == NULL) return luaL_typeerror(L, 1, "lipc object");
  if (!h->open) return lipc_closed_error(L, h->cls);
  if (h->fd < 0) return luaL_error(L, "%s has no descriptor", h->cls->name);
  lua_pushinteger(L, h->fd);
  return 1;
}

/* Build cls's metatable once: methods as __index plus the shared ones. */
void lipc_register(lua_State *L, const lipc_class *cls, const luaL_Reg *methods) {
  int fresh = luaL_newmetatable(L, cls->name);
  if (!is_class(cls)) {
    int i = 0;
    while (i < MAX_CLASSES - 1 && classes[i]) i++;
    classes[i] = cls;
  }
  if (!fresh) { lua_pop(L, 1); return; }
  lua_newtable(L);
  if (methods) luaL_setfuncs(L, methods, 0);
  lua_pushcfunction(L, m_close);
  lua_setfield(L, -2, "close");
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, m_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, m_gc);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, m_tostring);
  lua_setfield(L, -2, "__tostring");
  /* remember the methods table under the kind, for ipc._methods */
  if (lua_getfield(L, LUA_REGISTRYINDEX, LIPC_METHODS_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, LIPC_METHODS_KEY);
  }
  lua_getfield(L, -2, "__index");
  lua_setfield(L, -2, cls->name + 5);  /* "lipc.pipe" -> "pipe" */
  lua_pop(L, 2);
}

/* New closed userdata of cls, registered in the live table. */
void *lipc_new(lua_State *L, const lipc_class *cls, int nuv) {
  lipc_handle *h = lua_newuserdatauv(L, cls->size, nuv);
  memset(h, 0, cls->size);
  h->cls = cls;
  h->fd = -1;
  h->owner = getpid();
  luaL_setmetatable(L, cls->name);
  lua_getfield(L, LUA_REGISTRYINDEX, LIPC_LIVE_KEY);
  if (lua_istable(L, -1)) {
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
  }
  lua_pop(L, 1);
  return h;
}

/* ipc.type(x): like io.type: "pipe", "closed pipe", ... (the kind after
 * "lipc."), or nil when x is not a lipc object. */
static int l_type(lua_State *L) {
  luaL_checkany(L, 1);
  lipc_handle *h = lipc_toany(L, 1);
  if (h == NULL) lua_pushnil(L);
  else if (h->open) lua_pushstring(L, h->cls->name + 5);
  else lua_pushfstring(L, "closed %s", h->cls->name + 5);
  return 1;
}

/* ---- errors ------------------------------------------------------------ */

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

/* The limit behind err, for the message: " (nofile limit 40)" for EMFILE
 * (the soft RLIMIT_NOFILE), " (file-max limit N)" for ENFILE; "" else. */
static void limit_note(int err, char *buf, size_t len) {
  buf[0] = '\0';
  if (err == EMFILE) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) snprintf(buf, len, " (nofile limit)");
    else if (rl.rlim_cur == RLIM_INFINITY) snprintf(buf, len, " (nofile limit unlimited)");
    else snprintf(buf, len, " (nofile limit %llu)", (unsigned long long)rl.rlim_cur);
  } else if (err == ENFILE) {
    /* may fail for want of a descriptor: then the limit is named alone */
    long long v = lipc_proc_value("/proc/sys/fs/file-max", 0, -1);
    if (v < 0) snprintf(buf, len, " (file-max limit)");
    else snprintf(buf, len, " (file-max limit %lld)", v);
  }
}

int lipc_error(lua_State *L, int err, const char *call, const char *what) {
  if (err == EINTR && coroutine_interrupt) {
    coroutine_interrupt = 0;
    return luaL_error(L, "interrupted!");
  }
  char limit[64];
  limit_note(err, limit, sizeof limit);
  lua_pushnil(L);
  if (what && *what)
    lua_pushfstring(L, "%s %s: %s%s", call, what, strerror(err), limit);
  else
    lua_pushfstring(L, "%s: %s%s", call, strerror(err), limit);
  lua_pushinteger(L, err);
  return 3;
}

int lipc_timeout(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "timeout");
  lua_pushinteger(L, ETIMEDOUT);
  return 3;
}

int lipc_fail(lua_State *L, int err, const char *call, const char *what) {
  if (err == ETIMEDOUT) return lipc_timeout(L);
  return lipc_error(L, err, call, what);
}

/* ---- timeouts ---------------------------------------------------------- */

/* Longest timeout kept exactly (about 31 years); longer ones, math.huge
 * included, wait that long, which is as good as forever. */
#define MAX_TIMEOUT_SECS 1e9

static void ts_add(struct timespec *t, double secs) {
  if (!(secs < MAX_TIMEOUT_SECS)) secs = MAX_TIMEOUT_SECS;
  double whole = floor(secs);
  long ns = (long)((secs - whole) * 1e9);
  t->tv_sec += (time_t)whole;
  t->tv_nsec += ns;
  if (t->tv_nsec >= 1000000000L) { t->tv_sec++; t->tv_nsec -= 1000000000L; }
}

/* The main thread of L's state (L itself when it is the main thread). */
/* The main thread last seen: every blocking call asks for it, and nearly
 * all run on it (a state closed and a coroutine made at the same address
 * would only read that coroutine's hook: no crash, L is alive). */
static LIPC_TLS lua_State *known_main;

lua_State *lipc_main_thread(lua_State *L) {
  if (L == known_main) return L;
  if (lua_pushthread(L)) { lua_pop(L, 1); known_main = L; return L; }
  lua_pop(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  lua_State *m = lua_tothread(L, -1);
  lua_pop(L, 1);
  return m;
}


/* lua5.4's SIGINT handler arms the main thread with a hook on every event
 * and a count of 1; a coroutine keeps the hook it had when created. */
#define CTRL_C_MASK (LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT)

void lipc_deadline_secs(lua_State *L, double secs, lipc_deadline *d) {
  d->L = L;
  if (L == known_main && L != NULL) {  /* the main thread: the common case, short */
    d->main = L;
    d->hook = lua_gethook(L);
    coroutine_interrupt = 0;
    d->forever = secs < 0;
    if (!d->forever) {
      clock_gettime(CLOCK_MONOTONIC, &d->end);
      ts_add(&d->end, secs);
    }
    return;
  }
  d->main = L ? lipc_main_thread(L) : NULL;
  d->hook = L ? lua_gethook(d->main) : NULL;
  coroutine_interrupt = 0;
  /* in a coroutine, a Ctrl-C that came earlier (the main thread armed and
   * the coroutine not) is still pending: the call is interrupted at once */
  if (L && L != d->main && d->hook != NULL && d->hook != lua_gethook(L) &&
      lua_gethookmask(d->main) == CTRL_C_MASK && lua_gethookcount(d->main) == 1)
    d->hook = NULL;
  d->forever = secs < 0;
  if (!d->forever) {
    clock_gettime(CLOCK_MONOTONIC, &d->end);
    ts_add(&d->end, secs);
  }
}

void lipc_deadline_init(lua_State *L, int idx, lipc_deadline *d) {
  if (lua_isnoneornil(L, idx)) { lipc_deadline_secs(L, -1, d); return; }
  if (lua_type(L, idx) != LUA_TNUMBER) luaL_typeerror(L, idx, "timeout in seconds");
  double t = lua_tonumber(L, idx);
  luaL_argcheck(L, t >= 0 && !isnan(t), idx, "timeout must be >= 0");
  lipc_deadline_secs(L, t, d);
}

int lipc_deadline_left(const lipc_deadline *d, struct timespec *ts) {
  if (d->forever) return -1;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  ts->tv_sec = d->end.tv_sec - now.tv_sec;
  ts->tv_nsec = d->end.tv_nsec - now.tv_nsec;
  if (ts->tv_nsec < 0) { ts->tv_sec--; ts->tv_nsec += 1000000000L; }
  if (ts->tv_sec < 0) { ts->tv_sec = 0; ts->tv_nsec = 0; }
  return 0;
}

int lipc_deadline_expired(const lipc_deadline *d) {
  struct timespec ts;
  if (lipc_deadline_left(d, &ts) < 0) return 0;
  return ts.tv_sec == 0 && ts.tv_nsec == 0;
}

int lipc_deadline_ms(const lipc_deadline *d) {
  struct timespec ts;
  if (lipc_deadline_left(d, &ts) < 0) return -1;
  if (ts.tv_sec > INT_MAX / 1000 - 1) return INT_MAX;
  return (int)(ts.tv_sec * 1000 + (ts.tv_nsec + 999999) / 1000000);
}

int lipc_deadline_abs(const lipc_deadline *d, clockid_t clk, struct timespec *ts) {
  struct timespec left;
  if (lipc_deadline_left(d, &left) < 0) return -1;
  clock_gettime(clk, ts);
  ts->tv_sec += left.tv_sec;
  ts->tv_nsec += left.tv_nsec;
  if (ts->tv_nsec >= 1000000000L) { ts->tv_sec++; ts->tv_nsec -= 1000000000L; }
  return 0;
}

int lipc_interrupted(const lipc_deadline *d) {
  if (d->L == NULL || lua_gethook(d->main) == d->hook) return 0;
  if (d->L != d->main) coroutine_interrupt = 1;
  return 1;
}

int lipc_wait_fd(lipc_deadline *d, int fd, short events) {
  struct pollfd p = { .fd = fd, .events = events, .revents = 0 };
  for (;;) {
    struct timespec ts;
    if (lipc_interrupted(d)) return EINTR;  /* a Ctrl-C that came before the wait */
    int forever = lipc_deadline_left(d, &ts) < 0;
    int n = ppoll(&p, 1, forever ? NULL : &ts, NULL);
    if (n > 0) {
      if (p.revents & POLLNVAL) return EBADF;
      return 0;
    }
    if (n == 0) return ETIMEDOUT;
    if (errno != EINTR) return errno;
    if (lipc_interrupted(d)) return EINTR;
  }
}

/* ---- arguments --------------------------------------------------------- */

/* The lauxlib originals are called as (luaL_x)(...), which the macros of
 * core.h do not touch. */

/* Push the name registered for the running C function, or nothing and
 * return NULL.  ar is its frame. */
static const char *registered_name(lua_State *L, lua_Debug *ar) {
  lua_getinfo(L, "f", ar);
  if (lua_getfield(L, LUA_REGISTRYINDEX, NAMES_KEY) != LUA_TTABLE) { lua_pop(L, 2); return NULL; }
  lua_pushvalue(L, -2);
  if (lua_rawget(L, -2) != LUA_TSTRING) { lua_pop(L, 3); return NULL; }
  lua_replace(L, -3);
  lua_pop(L, 1);
  return lua_tostring(L, -1);
}

int lipc_argerror(lua_State *L, int arg, const char *extramsg) {
  lua_Debug ar;
  if (!lua_getstack(L, 0, &ar)) return (luaL_argerror)(L, arg, extramsg);
  lua_getinfo(L, "n", &ar);
  if (ar.namewhat != NULL && strcmp(ar.namewhat, "method") == 0)
    return (luaL_argerror)(L, arg, extramsg);  /* obj:m(...): Lua's naming, self not counted */
  const char *name = registered_name(L, &ar);
  if (name == NULL) return (luaL_argerror)(L, arg, extramsg);
  return luaL_error(L, "bad argument #%d to '%s' (%s)", arg, name, extramsg);
}

int lipc_typeerror(lua_State *L, int arg, const char *tname) {
  const char *typearg;
  if (luaL_getmetafield(L, arg, "__name") == LUA_TSTRING) typearg = lua_tostring(L, -1);
  else if (lua_type(L, arg) == LUA_TLIGHTUSERDATA) typearg = "light userdata";
  else typearg = luaL_typename(L, arg);
  return lipc_argerror(L, arg, lua_pushfstring(L, "%s expected, got %s", tname, typearg));
}

const char *lipc_checklstring(lua_State *L, int arg, size_t *len) {
  const char *s = lua_tolstring(L, arg, len);
  if (s == NULL) lipc_typeerror(L, arg, lua_typename(L, LUA_TSTRING));
  return s;
}

lua_Integer lipc_checkinteger(lua_State *L, int arg) {
  int isnum;
  lua_Integer d = lua_tointegerx(L, arg, &isnum);
  if (!isnum) {
    if (lua_isnumber(L, arg)) lipc_argerror(L, arg, "number has no integer representation");
    else lipc_typeerror(L, arg, lua_typename(L, LUA_TNUMBER));
  }
  return d;
}

void lipc_checktype(lua_State *L, int arg, int t) {
  if (lua_type(L, arg) != t) lipc_typeerror(L, arg, lua_typename(L, t));
}

void lipc_checkanyarg(lua_State *L, int arg) {
  if (lua_type(L, arg) == LUA_TNONE) lipc_argerror(L, arg, "value expected");
}

void *lipc_checkudata(lua_State *L, int arg, const char *tname) {
  void *p = luaL_testudata(L, arg, tname);
  if (p == NULL) lipc_typeerror(L, arg, tname);
  return p;
}

int lipc_checkoption(lua_State *L, int arg, const char *def, const char *const lst[]) {
  const char *name = def && lua_isnoneornil(L, arg) ? def : lipc_checklstring(L, arg, NULL);
  for (int i = 0; lst[i]; i++)
    if (strcmp(lst[i], name) == 0) return i;
  return lipc_argerror(L, arg, lua_pushfstring(L, "invalid option '%s'", name));
}

/* Name the C functions (string keys) of the table at t: "<prefix>.<key>",
 * or the key alone when prefix is NULL. */
static void name_table(lua_State *L, int names, int t, const char *prefix) {
  t = lua_absindex(L, t);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_iscfunction(L, -1)) {
      lua_pushvalue(L, -1);
      if (prefix) lua_pushfstring(L, "%s.%s", prefix, lua_tostring(L, -3));
      else lua_pushvalue(L, -3);
      lua_rawset(L, names);
    }
    lua_pop(L, 1);
  }
}

void lipc_name_functions(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_newtable(L);
  int names = lua_gettop(L);
  /* methods first: a function that is also a module function takes that name */
  if (lua_getfield(L, LUA_REGISTRYINDEX, LIPC_METHODS_KEY) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      name_table(L, names, -1, NULL);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TTABLE)
      name_table(L, names, -1, lua_tostring(L, -2));
    lua_pop(L, 1);
  }
  name_table(L, names, idx, NULL);  /* top-level names win: ipc.mmap, not a sub-table's */
  lua_setfield(L, LUA_REGISTRYINDEX, NAMES_KEY);
}

lua_Integer lipc_checkrange(lua_State *L, int idx, lua_Integer min, lua_Integer max) {
  int isnum = 0;
  lua_Integer v = lua_tointegerx(L, idx, &isnum);
  if (!isnum) {
    if (lua_type(L, idx) == LUA_TNUMBER)
      luaL_argerror(L, idx, "number has no integer representation");
    luaL_typeerror(L, idx, "integer");
  }
  if (v < min || v > max)
    luaL_argerror(L, idx, lua_pushfstring(L, "out of range (%I to %I)", min, max));
  return v;
}

lua_Integer lipc_optrange(lua_State *L, int idx, lua_Integer def, lua_Integer min, lua_Integer max) {
  return lua_isnoneornil(L, idx) ? def : lipc_checkrange(L, idx, min, max);
}

size_t lipc_checksize(lua_State *L, int idx) {
  return (size_t)lipc_checkrange(L, idx, 0, (lua_Integer)(SSIZE_MAX < LUA_MAXINTEGER ? SSIZE_MAX : LUA_MAXINTEGER));
}

/* Parse an octal string "600"/"0600"/"0o600"; -1 if malformed. */
static long parse_octal(const char *s) {
  if (s[0] == '0' && (s[1] == 'o' || s[1] == 'O')) s += 2;
  if (*s == '\0' || strlen(s) > 6) return -1;
  long v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '7') return -1;
    v = v * 8 + (*s - '0');
  }
  return v;
}

mode_t lipc_checkmode(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TSTRING) {
    long v = parse_octal(lua_tostring(L, idx));
    if (v < 0 || v > 07777) luaL_argerror(L, idx, "mode must be an octal string like \"600\"");
    return (mode_t)v;
  }
  if (lua_type(L, idx) != LUA_TNUMBER) luaL_typeerror(L, idx, "mode (integer or octal string)");
  return (mode_t)lipc_checkrange(L, idx, 0, 07777);
}

typedef struct { const char *name; int value; } signame;
static const signame SIGNALS[] = {
  {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"ILL", SIGILL},
  {"TRAP", SIGTRAP}, {"ABRT", SIGABRT}, {"BUS", SIGBUS}, {"FPE", SIGFPE},
  {"KILL", SIGKILL}, {"USR1", SIGUSR1}, {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
  {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM},
#ifdef SIGSTKFLT
  {"STKFLT", SIGSTKFLT},
#endif
  {"CHLD", SIGCHLD}, {"CONT", SIGCONT}, {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},
  {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU}, {"URG", SIGURG}, {"XCPU", SIGXCPU},
  {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
  {"WINCH", SIGWINCH}, {"IO", SIGIO}, {"POLL", SIGPOLL},
#ifdef SIGPWR
  {"PWR", SIGPWR},
#endif
  {"SYS", SIGSYS}, {"IOT", SIGIOT}, {"CLD", SIGCHLD},
  {NULL, 0}
};

const char *lipc_signame(int signo, char *buf, size_t len) {
  for (const signame *s = SIGNALS; s->name; s++)
    if (s->value == signo) { snprintf(buf, len, "%s", s->name); return buf; }
  if (signo == SIGRTMIN) snprintf(buf, len, "RTMIN");
  else if (signo == SIGRTMAX) snprintf(buf, len, "RTMAX");
  else if (signo > SIGRTMIN && signo < SIGRTMAX) snprintf(buf, len, "RTMIN+%d", signo - SIGRTMIN);
  else snprintf(buf, len, "%d", signo);
  return buf;
}

/* Parse "RTMIN", "RTMIN+n", "RTMAX-n"; -1 if not one of those. */
static int parse_rt(const char *s) {
  int base, sign;
  if (strncmp(s, "RTMIN", 5) == 0) { base = SIGRTMIN; sign = 1; }
  else if (strncmp(s, "RTMAX", 5) == 0) { base = SIGRTMAX; sign = -1; }
  else return -1;
  s += 5;
  if (*s == '\0') return base;
  if (*s != (sign > 0 ? '+' : '-')) return -1;
  s++;
  if (!isdigit((unsigned char)*s) || strlen(s) > 3) return -1;
  int n = atoi(s);
  int sig = base + sign * n;
  if (sig < SIGRTMIN || sig > SIGRTMAX) return -1;
  return sig;
}

int lipc_tosignal(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  if (t == LUA_TNUMBER) {
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, idx, &isint);
    if (!isint) { lua_pushliteral(L, "number has no integer representation"); return -1; }
    if (v < 0 || v > SIGRTMAX) { lua_pushfstring(L, "out of range (0 to %d)", SIGRTMAX); return -1; }
    return (int)v;
  }
  if (t != LUA_TSTRING) {
    lua_pushfstring(L, "signal name or number expected, got %s", luaL_typename(L, idx));
    return -1;
  }
  const char *s = lua_tostring(L, idx);
  char up[24];
  size_t n = strlen(s);
  if (n == 0 || n >= sizeof up || n != lua_rawlen(L, idx)) {
    lua_pushliteral(L, "unknown signal name");
    return -1;
  }
  for (size_t i = 0; i <= n; i++) up[i] = (char)toupper((unsigned char)s[i]);
  const char *p = strncmp(up, "SIG", 3) == 0 ? up + 3 : up;
  for (const signame *sn = SIGNALS; sn->name; sn++)
    if (strcmp(sn->name, p) == 0) return sn->value;
  int rt = parse_rt(p);
  if (rt > 0) return rt;
  lua_pushfstring(L, "unknown signal name '%s'", s);
  return -1;
}

int lipc_checksignal(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  if (t != LUA_TNUMBER && t != LUA_TSTRING) luaL_typeerror(L, idx, "string");
  int s = lipc_tosignal(L, idx);
  if (s < 0) luaL_argerror(L, idx, lua_tostring(L, -1));
  return s;
}

void lipc_setsignals(lua_State *L) {
  char name[16];
  for (const signame *sn = SIGNALS; sn->name; sn++) {
    snprintf(name, sizeof name, "SIG%s", sn->name);
    lua_pushinteger(L, sn->value);
    lua_setfield(L, -2, name);
  }
  /* run-time values in glibc */
  lua_pushinteger(L, SIGRTMIN);
  lua_setfield(L, -2, "SIGRTMIN");
  lua_pushinteger(L, SIGRTMAX);
  lua_setfield(L, -2, "SIGRTMAX");
}

const char *lipc_checkposixname(lua_State *L, int idx, size_t maxlen) {
  size_t len;
  const char *s = luaL_checklstring(L, idx, &len);
  if (len < 2 || s[0] != '/')
    luaL_argerror(L, idx, "name must be '/' followed by at least one character");
  if (memchr(s, '\0', len) != NULL) luaL_argerror(L, idx, "name contains a NUL byte");
  if (memchr(s + 1, '/', len - 1) != NULL) luaL_argerror(L, idx, "name must not contain '/' after the first");
  if (len > maxlen)
    luaL_argerror(L, idx, lua_pushfstring(L, "name longer than %d bytes", (int)maxlen));
  if (strcmp(s, "/.") == 0 || strcmp(s, "/..") == 0) luaL_argerror(L, idx, "name must not be '.' or '..'");
  return s;
}

void lipc_checkoptions(lua_State *L, int idx, const char *const allowed[]) {
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
      luaL_argerror(L, idx, lua_pushfstring(L, "unknown option (option keys must be strings, got %s)",
                                            luaL_typename(L, -1)));
    }
    const char *k = lua_tostring(L, -1);
    int ok = 0;
    for (int i = 0; allowed[i]; i++)
      if (strcmp(allowed[i], k) == 0) { ok = 1; break; }
    if (!ok) luaL_argerror(L, idx, lua_pushfstring(L, "unknown option '%s'", k));
  }
}

/* Push opts[key] (nil when opts is absent); returns its type. */
static int getopt_(lua_State *L, int idx, const char *key) {
  if (lua_isnoneornil(L, idx)) { lua_pushnil(L); return LUA_TNIL; }
  idx = lua_absindex(L, idx);
  lua_pushstring(L, key);
  return lua_rawget(L, idx);  /* raw, as lipc_checkoptions reads the keys */
}

int lipc_opterror(lua_State *L, int idx, const char *key, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const char *why = lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  return luaL_argerror(L, idx, lua_pushfstring(L, "option '%s': %s", key, why));
}

/* The option value on top is not of the type expected. */
static void opterror(lua_State *L, int idx, const char *key, const char *expected) {
  lipc_opterror(L, idx, key, "%s expected, got %s", expected, luaL_typename(L, -1));
}

int lipc_optbool(lua_State *L, int idx, const char *key, int def) {
  int t = getopt_(L, idx, key);
  int v = def;
  if (t == LUA_TBOOLEAN) v = lua_toboolean(L, -1);
  else if (t != LUA_TNIL) opterror(L, idx, key, "boolean");
  lua_pop(L, 1);
  return v;
}

lua_Integer lipc_optint(lua_State *L, int idx, const char *key, lua_Integer def,
                        lua_Integer min, lua_Integer max) {
  int t = getopt_(L, idx, key);
  lua_Integer v = def;
  if (t != LUA_TNIL) {
    int isnum = 0;
    v = lua_tointegerx(L, -1, &isnum);
    if (t != LUA_TNUMBER || !isnum) opterror(L, idx, key, "integer");
    if (v < min || v > max)
      lipc_opterror(L, idx, key, "out of range (%I to %I)", min, max);
  }
  lua_pop(L, 1);
  return v;
}

mode_t lipc_optmode(lua_State *L, int idx, const char *key, mode_t def) {
  int t = getopt_(L, idx, key);
  mode_t v = def;
  if (t == LUA_TSTRING) {
    long m = parse_octal(lua_tostring(L, -1));
    if (m < 0 || m > 07777)
      lipc_opterror(L, idx, key, "octal string like \"600\" expected");
    v = (mode_t)m;
  } else if (t == LUA_TNUMBER) {
    int isnum = 0;
    lua_Integer m = lua_tointegerx(L, -1, &isnum);
    if (!isnum || m < 0 || m > 07777)
      lipc_opterror(L, idx, key, "out of range (0 to 4095)");
    v = (mode_t)m;
  } else if (t != LUA_TNIL) {
    opterror(L, idx, key, "mode");
  }
  lua_pop(L, 1);
  return v;
}

const char *lipc_optstring(lua_State *L, int idx, const char *key, const char *def) {
  int t = getopt_(L, idx, key);
  const char *v = def;
  if (t == LUA_TSTRING) v = lua_tostring(L, -1);  /* kept alive by the options table */
  else if (t != LUA_TNIL) opterror(L, idx, key, "string");
  lua_pop(L, 1);
  return v;
}

/* ---- process-wide helpers ---------------------------------------------- */

pid_t lipc_fork(void) {
  fflush(NULL);
  return fork();
}

ssize_t lipc_write_nosigpipe(int fd, const void *buf, size_t len) {
  return lipc_pwrite_nosigpipe(fd, buf, len, 0);
}

ssize_t lipc_pwrite_nosigpipe(int fd, const void *buf, size_t len, int rwf) {
  sigset_t pipe_set, old, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  struct iovec v = { (void *)buf, len };
  ssize_t n = rwf ? pwritev2(fd, &v, 1, -1, rwf) : write(fd, buf, len);
  int err = errno;
  if (n < 0 && err == EPIPE && !sigismember(&old, SIGPIPE)) {
    /* drain the SIGPIPE this write raised, unless one was pending before */
    sigpending(&pending);
    if (sigismember(&pending, SIGPIPE)) {
      struct timespec zero = {0, 0};
      while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {}
    }
  }
  if (!sigismember(&old, SIGPIPE)) pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = err;
  return n;
}

void lipc_setconsts(lua_State *L, const lipc_const *c) {
  for (; c->name; c++) {
    lua_pushinteger(L, c->value);
    lua_setfield(L, -2, c->name);
  }
}

void lipc_subtable(lua_State *L, int idx, const char *name) {
  idx = lua_absindex(L, idx);
  if (lua_getfield(L, idx, name) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, idx, name);
  }
}

void lipc_open_core(lua_State *L) {
  /* the weak-keyed table of live handles */
  if (lua_getfield(L, LUA_REGISTRYINDEX, LIPC_LIVE_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_newtable(L);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, LIPC_LIVE_KEY);
  } else {
    lua_pop(L, 1);
  }
  lua_pushcfunction(L, l_type);
  lua_setfield(L, -2, "type");
}

/* The backoff schedule: 50 us doubling to 5 ms (step 0, 1, ...). */
long long lipc_backoff_ns(int step) {
  if (step < 0) step = 0;
  long long ns = 50000LL << (step < 7 ? step : 7);
  return ns > 5000000LL ? 5000000LL : ns;
}

/* Sleep before retrying an operation that poll called ready but that still
 * would block; see core.h. */
int lipc_backoff(lipc_deadline *d, int *step) {
  if (lipc_interrupted(d)) return EINTR;
  if (lipc_deadline_expired(d)) return ETIMEDOUT;
  long ns = (long)lipc_backoff_ns(*step);
  (*step)++;
  struct timespec nap = {0, ns}, left;
  if (lipc_deadline_left(d, &left) == 0 && left.tv_sec == 0 && left.tv_nsec < nap.tv_nsec) nap = left;
  if (nanosleep(&nap, NULL) != 0 && errno == EINTR && lipc_interrupted(d)) return EINTR;
  return lipc_deadline_expired(d) ? ETIMEDOUT : 0;
}

/* Wait for fd after EAGAIN; back off first when a wait already said ready
 * (see core.h). */
int lipc_wait_retry(lipc_deadline *d, int fd, short events, int *tries) {
  if (*tries > 0) {
    int step = *tries - 1;
    int err = lipc_backoff(d, &step);
    if (err != 0) return err;
  }
  if (*tries < 64) (*tries)++;  /* the backoff is capped long before */
  return lipc_wait_fd(d, fd, events);
}

/* Out of descriptors: collect garbage so forgotten objects close theirs. */
int lipc_reclaim_fds(lua_State *L, int err) {
  if (err != EMFILE && err != ENFILE) return 0;
  lua_gc(L, LUA_GCCOLLECT, 0);
  return 1;
}

/* ---- the one wait path (see core.h) ------------------------------------- */

#include <linux/futex.h>
#include <sys/syscall.h>

/* The task that csrc/task.c is running on this OS thread, or NULL; what its
 * last wait yielded for; and whether the loop asked it to stop. */
static LIPC_TLS lua_State *current_task;
static LIPC_TLS lipc_wait *task_wait;
static LIPC_TLS int task_cancel;
/* Set once any task ran in this process (any thread): until then no call
 * can be in a task, which lipc_in_task answers from one plain load. */
static int tasks_seen;

lua_State *lipc_task_enter(lua_State *co, int cancel) {
  if (co != NULL) __atomic_store_n(&tasks_seen, 1, __ATOMIC_RELAXED);
  lua_State *prev = current_task;
  current_task = co;
  task_wait = NULL;
  task_cancel = cancel;
  return prev;
}

lipc_wait *lipc_task_waiting(void) {
  return task_wait;
}

int lipc_in_task(lua_State *L) {
  /* before any task ran, one plain load answers: thread-local variables
   * cost a __tls_get_addr call in a shared object, on every blocking call */
  return __atomic_load_n(&tasks_seen, __ATOMIC_RELAXED) && L == current_task && current_task != NULL &&
         lua_isyieldable(L);
}

void lipc_wait_init(lua_State *L, lipc_wait *w, int tidx, lipc_try_fn try) {
  /* field by field (a new field of lipc_wait needs its line here): this
   * runs on every blocking call, where gcc makes a memset of the record a
   * slow `rep stos` */
  w->d.end.tv_sec = 0;
  w->d.end.tv_nsec = 0;
  if (tidx > 0) lipc_deadline_init(L, tidx, &w->d);
  else lipc_deadline_secs(L, -1, &w->d);
  w->try = try;
  w->stop = NULL;
  w->call = NULL;
  w->block = 0;
  w->fd = -1;
  w->events = 0;
  w->word = NULL;
  w->val = 0;
  w->shared = 0;
  w->sleep = 0;
  w->tries = 0;
  w->acc[0] = w->acc[1] = 0;
  w->p = NULL;
  w->recheck = 0;
  w->leave = NULL;
}

/* __close and __gc of an armed descriptor slot. */
static int fdslot_gc(lua_State *L) {
  int *slot = lua_touserdata(L, 1);
  if (slot != NULL) lipc_fdslot_close(slot);
  return 0;
}

void lipc_fdslot_close(int *slot) {
  if (*slot >= 0) close(*slot);
  *slot = -1;
}

void lipc_fdslot_arm(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (luaL_newmetatable(L, "lipc.fdslot")) {
    lua_pushcfunction(L, fdslot_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, fdslot_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_setmetatable(L, idx);
  lua_toclose(L, idx);
}

/* A futex wait on a word while it holds val, for at most ts (NULL:
 * forever).  0 (woken, or the word changed), ETIMEDOUT or EINTR. */
static int futex_wait(const uint32_t *word, uint32_t val, int shared, const struct timespec *ts) {
  long rc = syscall(SYS_futex, word, shared ? FUTEX_WAIT : FUTEX_WAIT_PRIVATE, val, ts, NULL, 0);
  if (rc == 0 || errno == EAGAIN) return 0;
  return errno == ETIMEDOUT ? ETIMEDOUT : errno == EINTR ? EINTR : errno;
}

/* Block the process until what w waits for, the deadline, or Ctrl-C.
 * 0 to try again, ETIMEDOUT, EINTR (interrupted) or another errno. */
static int wait_blocking(lipc_wait *w) {
  lipc_deadline *d = &w->d;
  if (w->fd >= 0) {
    int err = lipc_wait_retry(d, w->fd, w->events, &w->tries);
    return err;
  }
  if (w->word != NULL) {
    /* futex waits may be restarted by the kernel: bounded slices so that
     * Ctrl-C is seen within one */
    for (;;) {
      if (lipc_interrupted(d)) return EINTR;
      struct timespec ts = { 0, 200000000L }, left;
      if (lipc_deadline_left(d, &left) == 0) {
        if (left.tv_sec == 0 && left.tv_nsec == 0) return ETIMEDOUT;
        if (left.tv_sec == 0 && left.tv_nsec < ts.tv_nsec) ts = left;
      }
      if (__atomic_load_n(w->word, __ATOMIC_ACQUIRE) != w->val) return 0;
      int err = futex_wait(w->word, w->val, w->shared, &ts);
      if (err == 0) return 0;
      if (err == EINTR) { if (lipc_interrupted(d)) return EINTR; continue; }
      if (err != ETIMEDOUT) return err;
      /* a slice ended: the word may still hold val; the loop checks (or
       * the try looks at what no wake announces) */
      if (w->recheck) return 0;
    }
  }
  if (w->sleep) {
    for (;;) {
      if (lipc_interrupted(d)) return EINTR;
      struct timespec left;
      if (lipc_deadline_left(d, &left) < 0) left.tv_sec = 3600, left.tv_nsec = 0;
      else if (left.tv_sec == 0 && left.tv_nsec == 0) return ETIMEDOUT;
      if (clock_nanosleep(CLOCK_MONOTONIC, 0, &left, NULL) == EINTR && lipc_interrupted(d)) return EINTR;
    }
  }
  int step = w->tries++;
  return lipc_backoff(d, &step);
}

/* The end of a wait that did not succeed: stop, timeout or the EINTR error. */
static int wait_end(lua_State *L, lipc_wait *w, int err) {
  if (w->leave) w->leave(w);
  if (w->stop) return w->stop(L, w, err);
  return lipc_fail(L, err, w->call ? w->call : "wait", NULL);
}

static int run_k(lua_State *L, int status, lua_KContext ctx);

/* Yield the running task to the loop with w (boxed on the stack unless it
 * already is, at index box). */
static int task_yield(lua_State *L, lipc_wait *w, int box) {
  if (box == 0) {
    lipc_wait *b = lua_newuserdatauv(L, sizeof *b, 0);
    *b = *w;
    w = b;
    box = lua_gettop(L);
  }
  w->tries++;
  task_wait = w;
  return lua_yieldk(L, 0, (lua_KContext)box, run_k);
}

/* A sleep (w->sleep) that lasted its time: w->stop with 0 (not an error:
 * the time passed as asked) makes its result when set, otherwise none. */
static int sleep_end(lua_State *L, lipc_wait *w) {
  return w->stop ? w->stop(L, w, 0) : 0;
}

/* The loop of tries and waits (w may be boxed at index box, or 0),
 * starting with a try (n == RUN_TRY) or with the result n < 0 of a first
 * try that lipc_run_direct made. */
#define RUN_TRY INT_MIN
static int run_loop(lua_State *L, lipc_wait *w, int box, int n) {
  for (;; n = RUN_TRY) {
    if (n == RUN_TRY) {
      w->block = !lipc_in_task(L);
      /* lipc_interrupted's test inline first: this runs before every call */
      if (w->block && lua_gethook(w->d.main) != w->d.hook && lipc_interrupted(&w->d))
        return wait_end(L, w, EINTR);
      n = w->try(L, w);
    }
    if (n >= 0) return n;
    if (n == LIPC_EINTR) {
      if (lipc_interrupted(&w->d)) return wait_end(L, w, EINTR);
      continue;
    }
    if (lipc_deadline_expired(&w->d) && !w->sleep) return wait_end(L, w, ETIMEDOUT);
    if (w->sleep && lipc_deadline_expired(&w->d)) return sleep_end(L, w);
    if (!w->block) return task_yield(L, w, box);
    int err = wait_blocking(w);
    if (err == ETIMEDOUT && w->sleep) return sleep_end(L, w);
    if (err != 0) return wait_end(L, w, err);
  }
}

/* The continuation of a task's wait: the loop resumed it (ready, deadline,
 * or cancel). */
static int run_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  int box = (int)ctx;
  lipc_wait *w = lua_touserdata(L, box);
  lua_settop(L, box);  /* drop what resume passed */
  if (task_cancel) {
    task_cancel = 0;
    if (w->leave) w->leave(w);
    return luaL_error(L, "cancelled");
  }
  return run_loop(L, w, box, RUN_TRY);
}

int lipc_run(lua_State *L, lipc_wait *w) {
  /* a task cancelled while it ran (or yielded by coroutine.yield): its
   * next wait raises */
  if (task_cancel && lipc_in_task(L)) {
    task_cancel = 0;
    if (w->leave) w->leave(w);
    return luaL_error(L, "cancelled");
  }
  return run_loop(L, w, 0, RUN_TRY);
}

int lipc_run_from(lua_State *L, lipc_wait *w, int n) {
  return run_loop(L, w, 0, n);
}
