/*
 * core.h - what every lipc family shares: the closable handle, class
 * registration, error and timeout helpers, argument checks.
 *
 * Rules (the contract they serve: doc/api.md, "Rules that hold for every
 * object"):
 *  - create the userdata first (lipc_new), acquire the resource second,
 *    set h->open = 1 last;
 *  - one release function per class, called once by close/__close/__gc;
 *  - ownership is the creating pid: a name is removed only by its owner.
 */
#ifndef LIPC_CORE_H
#define LIPC_CORE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <lua.h>
#include <lauxlib.h>

typedef struct lipc_handle lipc_handle;

/* Thread-local storage read on every blocking call: initial-exec, where the
 * default model of a dlopen'ed library costs a __tls_get_addr call each
 * time (a few bytes of glibc's static TLS surplus). */
#define LIPC_TLS _Thread_local __attribute__((tls_model("initial-exec")))

/* A class: one per userdata kind.  Statically allocated by each family. */
typedef struct lipc_class {
  const char *name;   /* metatable name, e.g. "lipc.pipe" */
  const char *kind;   /* short kind for audit, e.g. "pipe" */
  size_t size;        /* size of the family struct (starts with lipc_handle) */
  /* Release the resource.  remove_name is nonzero when this process owns
   * the system-wide name and must remove it (not persist, creating pid).
   * Never raises, never calls Lua.  Returns 0 or an errno value.  NULL:
   * close(h->fd) if it is >= 0. */
  int (*release)(lipc_handle *h, int remove_name);
  /* Append the identity for __tostring ("fd=5, read").  May be NULL
   * (then "fd=N" is shown).  Called only on open handles. */
  void (*describe)(lipc_handle *h, luaL_Buffer *b);
  /* Set the identity fields (name=, id=, fd=) of the audit table on top
   * of the stack.  May be NULL (then fd= is set when fd >= 0). */
  void (*audit)(lua_State *L, lipc_handle *h);
  unsigned flags;     /* LIPC_CLASS_* */
} lipc_class;

/* The struct starts with lipc_stream (csrc/stream.h). */
#define LIPC_CLASS_STREAM 1u

/* The head of every lipc userdata. */
struct lipc_handle {
  const lipc_class *cls;
  int fd;                  /* descriptor, or -1 */
  pid_t owner;             /* pid that created the name (or the object) */
  unsigned char open;      /* 0 until the resource is in place; 0 after close */
  unsigned char owns;      /* this process created the system-wide name */
  unsigned char persist;   /* keep the name when the owner closes */
};

/* ---- handles and classes ---------------------------------------------- */

/* Registry key of the weak-keyed table of live handles (lipc_new fills
 * it; ipc.audit in csrc/system.c reads it). */
#define LIPC_LIVE_KEY "lipc.live"

/* Build the metatable of cls once (guarded): __index = methods plus close,
 * __gc, __close, __tostring, __name.  Leaves nothing on the stack. */
void lipc_register(lua_State *L, const lipc_class *cls, const luaL_Reg *methods);
/* Push a new zeroed, closed userdata of cls (fd = -1, owner = getpid()),
 * with nuv user values, registered for ipc.audit().  Returns it. */
void *lipc_new(lua_State *L, const lipc_class *cls, int nuv);
/* The handle at idx, of class cls and open; raises otherwise
 * ("attempt to use a closed lipc.pipe"). */
void *lipc_check(lua_State *L, int idx, const lipc_class *cls);
/* The handle at idx, of class cls, open or closed; raises otherwise. */
void *lipc_checkclass(lua_State *L, int idx, const lipc_class *cls);
/* Any lipc handle at idx (open or closed), or NULL. */
lipc_handle *lipc_toany(lua_State *L, int idx);
/* An open lipc handle at idx that has a descriptor; raises otherwise. */
lipc_handle *lipc_checkany(lua_State *L, int idx);
/* The descriptor of an open lipc object with a descriptor, or a plain
 * integer descriptor >= 0; raises otherwise. */
int lipc_checkfd(lua_State *L, int idx);
/* Release h once (the shared path of close/__close/__gc); 0 or errno. */
int lipc_release(lipc_handle *h);
/* Method fileno for any class with a descriptor. */
int lipc_m_fileno(lua_State *L);
/* Raise "attempt to use a closed <name>". */
int lipc_closed_error(lua_State *L, const lipc_class *cls);

/* ---- errors ------------------------------------------------------------ */

/* Push nil, "<call> <what>: <strerror(err)>", err and return 3.  what may
 * be NULL.  Capture errno before any Lua call and pass it here. */
int lipc_error(lua_State *L, int err, const char *call, const char *what);
/* Push nil, "timeout", ETIMEDOUT and return 3. */
int lipc_timeout(lua_State *L);
/* lipc_error for err, except ETIMEDOUT gives lipc_timeout. */
int lipc_fail(lua_State *L, int err, const char *call, const char *what);

/* ---- timeouts and interruption ----------------------------------------- */

typedef struct lipc_deadline {
  int forever;             /* no timeout: block */
  struct timespec end;     /* CLOCK_MONOTONIC end when !forever */
  lua_State *L;            /* the calling thread (maybe a coroutine) */
  lua_State *main;         /* the main thread: lua5.4 sets its Ctrl-C hook there */
  lua_Hook hook;           /* the main thread's hook when the call started */
} lipc_deadline;

/* The main thread of L's state (L itself when it is the main thread):
 * where lua5.4 arms its Ctrl-C hook. */
lua_State *lipc_main_thread(lua_State *L);
/* Read the optional timeout at idx (none/nil: forever; number >= 0;
 * negative, NaN or another type raises) and start the clock. */
void lipc_deadline_init(lua_State *L, int idx, lipc_deadline *d);
/* A deadline from a number of seconds (< 0 means forever). */
void lipc_deadline_secs(lua_State *L, double secs, lipc_deadline *d);
/* 1 when a finite deadline has passed. */
int lipc_deadline_expired(const lipc_deadline *d);
/* Remaining time as a relative timespec (zero once passed).  Returns 0,
 * or -1 when forever (ts untouched). */
int lipc_deadline_left(const lipc_deadline *d, struct timespec *ts);
/* Remaining milliseconds rounded up; -1 when forever. */
int lipc_deadline_ms(const lipc_deadline *d);
/* The deadline as an absolute time on clock clk (for mq_timedsend,
 * sem_timedwait, pthread_*_timedlock...).  Returns -1 when forever. */
int lipc_deadline_abs(const lipc_deadline *d, clockid_t clk, struct timespec *ts);
/* 1 when the interpreter installed a new hook since the call started:
 * the standalone lua's SIGINT handler does (on the main thread only, even
 * while a coroutine runs), so after an EINTR the caller returns to Lua
 * through lipc_error(L, EINTR, ...): on the main thread the hook then
 * raises "interrupted!"; in a coroutine lipc_error raises it itself.
 * Otherwise EINTR is retried on the remaining time. */
int lipc_interrupted(const lipc_deadline *d);
/* Wait until fd is ready for events (POLLIN/POLLOUT), retrying EINTR on
 * the remaining time.  0 when ready (or hung up / in error: the next call
 * reports it), ETIMEDOUT, EINTR when interrupted, or another errno. */
int lipc_wait_fd(lipc_deadline *d, int fd, short events);

/* Between tries of an operation that has no way to wait for readiness
 * (System V msgsnd/msgrcv with IPC_NOWAIT), or that failed with EAGAIN
 * although poll said ready (an eventfd add too large to fit, a datagram to
 * a full receiver), sleep a little before retrying: 50 us doubling to 5 ms, never
 * past the deadline.  *step starts at 0.  0 to retry, ETIMEDOUT when the
 * deadline has passed, EINTR when interrupted. */
int lipc_backoff(lipc_deadline *d, int *step);
/* The backoff's schedule in nanoseconds for step 0, 1, ... (50 us doubling
 * to 5 ms): the task loop and ipc.step park for the same times. */
long long lipc_backoff_ns(int step);

/* The wait step of every "try nonblocking, wait, try again" loop, after
 * the operation on fd said EAGAIN: wait for events against d, but when an
 * earlier wait of this loop already said ready (*tries > 0) and the
 * operation still would block (a competing reader, a shut-down datagram
 * socket that polls readable forever, a message too big for the room),
 * first lipc_backoff, which checks the deadline and Ctrl-C: such a loop
 * never spins and never outlives its deadline.  *tries starts at 0; the
 * caller resets it to 0 after progress.  0 to try again, or an errno
 * value (ETIMEDOUT, EINTR, ...). */
int lipc_wait_retry(lipc_deadline *d, int fd, short events, int *tries);

/* ---- the one wait path ---------------------------------------------------
 *
 * Every lipc call that can block is written as a *try* function and run by
 * lipc_run, the only place where lipc waits:
 *
 *   static int try_take(lua_State *L, lipc_wait *w) {
 *     ... one attempt; may block in the kernel only when w->block ...
 *     if (done) { push results; return nresults; }
 *     if (would block) { w->fd = fd; w->events = POLLIN; return LIPC_AGAIN; }
 *     if (a blocking call said EINTR) return LIPC_EINTR;
 *     return lipc_error(L, err, "read", NULL);        (also a result)
 *   }
 *   static int ltake(lua_State *L) {
 *     lipc_wait w; lipc_wait_init(L, &w, 2, try_take); w.p = obj;
 *     return lipc_run(L, &w);
 *   }
 *
 * lipc_run owns the deadline, Ctrl-C, EINTR, the backoff for "ready but
 * still EAGAIN", and the choice between blocking the process and yielding:
 * outside a task it waits here (ppoll on a descriptor, futex on a word, or
 * a short sleep); inside a task (csrc/task.c) it yields to the loop with a
 * continuation and retries when the loop resumes it.  So a try function:
 *  - reads its arguments at fixed stack indices (never lua_gettop: a
 *    yielded call has the wait record above them) and pushes results on
 *    top;
 *  - keeps progress across waits in w->acc / w->p, never in C locals;
 *  - resets w->tries to 0 whenever it made progress;
 *  - blocks in the kernel only when w->block is set (then it may call a
 *    plain blocking read, or a timed call with lipc_deadline_abs(&w->d)),
 *    and returns LIPC_EINTR when that call was interrupted.
 * When the deadline passes or Ctrl-C comes while waiting, w->stop (when
 * set) makes the final result (e.g. the bytes written so far; also at the
 * end of a w->sleep wait); otherwise
 * the result is nil, "timeout", ETIMEDOUT, or the EINTR error named after
 * w->call ("interrupted!" is then raised by the interpreter). */

#define LIPC_AGAIN (-1)   /* not ready: wait as w says, then try again */
#define LIPC_EINTR (-2)   /* a blocking kernel call was interrupted */

typedef struct lipc_wait lipc_wait;
typedef int (*lipc_try_fn)(lua_State *L, lipc_wait *w);
typedef int (*lipc_stop_fn)(lua_State *L, lipc_wait *w, int err);

struct lipc_wait {        /* lipc_wait_init sets every field */
  lipc_deadline d;
  lipc_try_fn try;
  lipc_stop_fn stop;       /* may be NULL */
  const char *call;        /* names the EINTR error ("read") */
  int block;               /* set by lipc_run: the try may block in the kernel */
  /* what to wait for after LIPC_AGAIN (the try sets one): */
  int fd;                  /* a descriptor (events POLLIN/POLLOUT), or -1 */
  short events;
  const uint32_t *word;    /* or a futex word, while it holds val */
  uint32_t val;
  int shared;              /* the word is in shared memory (not private) */
  int sleep;               /* or nothing but the deadline (ipc.sleep) */
                           /* none of them: retry after a short backoff */
  int tries;               /* waits since the last progress (backoff) */
  lua_Integer acc[2];      /* the try's progress, kept across waits */
  void *p;                 /* the try's object */
  /* futex waits that something no wake announces can end (a dead peer,
   * a dead lock holder): try again every 0.2 s even while the word holds
   * val (outside a task: after each slice; in a task: the loop resumes) */
  int recheck;
  /* may be NULL: undo what the try registered before its last LIPC_AGAIN
   * (a waiter count, a wake it may have consumed) when the wait ends
   * without another try: timeout, Ctrl-C, cancel.  Never raises. */
  void (*leave)(lipc_wait *w);
};

/* Start w for try: the timeout at tidx (0: none, wait forever), no stop,
 * nothing to wait for yet. */
void lipc_wait_init(lua_State *L, lipc_wait *w, int tidx, lipc_try_fn try);
/* Run w->try until it returns results; see above.  Returns the number of
 * results (use as `return lipc_run(L, &w);`: it may yield). */
int lipc_run(lua_State *L, lipc_wait *w);
/* A descriptor that a try opens only to wait on (a temporary pidfd, an
 * epoll set holding many descriptors) lives in the first int of a
 * userdata that the caller put at a fixed stack index below the wait
 * record (-1: none yet).  lipc_fdslot_arm(L, idx), called once when a
 * descriptor is stored there, makes that userdata a to-be-closed value
 * that also closes on collection: the descriptor is closed when the C
 * function returns or raises, a cancelled task's wait included.
 * lipc_fdslot_close closes it at once (idempotent). */
void lipc_fdslot_arm(lua_State *L, int idx);
void lipc_fdslot_close(int *slot);
/* 1 when L is the running task of csrc/task.c's loop (calls yield). */
int lipc_in_task(lua_State *L);
/* lipc_run after a first try (made as lipc_run would) returned n < 0. */
int lipc_run_from(lua_State *L, lipc_wait *w, int n);
/* lipc_run with its first try a direct call of try (which must be w->try),
 * which the compiler can inline: for the hottest calls, where the indirect
 * call through w->try cost ~2% of an mq round trip (bench/mq_pingpong,
 * 4 blocking calls) on the test machine. */
static inline int lipc_run_direct(lua_State *L, lipc_wait *w, lipc_try_fn try) {
  if (lipc_in_task(L) || lua_gethook(w->d.main) != w->d.hook) return lipc_run(L, w);
  w->block = 1;
  int n = try(L, w);
  return n >= 0 ? n : lipc_run_from(L, w, n);
}
/* For csrc/task.c: make co the running task (NULL: none) around a resume,
 * with cancel set when the loop cancels it (its pending wait then raises
 * "cancelled"); returns the previous one. */
lua_State *lipc_task_enter(lua_State *co, int cancel);
/* For csrc/task.c: after a resume that yielded, the wait record the task
 * yielded with (boxed on its stack), or NULL for a plain coroutine.yield. */
lipc_wait *lipc_task_waiting(void);
/* An object at [addr, addr + len) is being closed (its release function):
 * the tasks of this thread's loop waiting on a futex word inside it are
 * resumed at the loop's next wait, and find it closed (csrc/task.c).
 * Safe anywhere (a __gc too): it only marks them. */
void lipc_task_forget(const void *addr, size_t len);

/* When err is EMFILE or ENFILE, run a full garbage collection (its __gc
 * closes the descriptors of objects the script forgot) and return 1 so
 * the caller tries once more; otherwise return 0. */
int lipc_reclaim_fds(lua_State *L, int err);
/* var = expr (a call that returns a descriptor, or 0, or -1 with errno);
 * out of descriptors: collect garbage and try once more. */
#define LIPC_FDCALL(L, var, expr) \
  do { (var) = (expr); if ((var) < 0 && lipc_reclaim_fds((L), errno)) (var) = (expr); } while (0)

/* ---- arguments --------------------------------------------------------- */

/* Argument errors name the function the user called ("mq.open", "exec"),
 * however it was called (ipc.mq.open(1), a local alias, pcall): Lua's own
 * luaL_argerror names a function by its call site ('open', the alias) or,
 * called from C, by a search of package.loaded that finds "lipc.core.exec"
 * and nothing in a sub-table ('?').  lipc_argerror looks the running
 * function up in a table of names filled once the module is built
 * (lipc_name_functions); a method called with ':' keeps Lua's naming.
 * The macros below send every lauxlib check used in csrc/ through it, so
 * no call site needs to change. */
int lipc_argerror(lua_State *L, int arg, const char *extramsg);
int lipc_typeerror(lua_State *L, int arg, const char *tname);
const char *lipc_checklstring(lua_State *L, int arg, size_t *len);
lua_Integer lipc_checkinteger(lua_State *L, int arg);
void lipc_checktype(lua_State *L, int arg, int t);
void lipc_checkanyarg(lua_State *L, int arg);
void *lipc_checkudata(lua_State *L, int arg, const char *tname);
int lipc_checkoption(lua_State *L, int arg, const char *def, const char *const lst[]);
#define luaL_argerror(L, arg, msg) lipc_argerror((L), (arg), (msg))
#define luaL_typeerror(L, arg, tname) lipc_typeerror((L), (arg), (tname))
#define luaL_checklstring(L, arg, len) lipc_checklstring((L), (arg), (len))
#define luaL_checkinteger(L, arg) lipc_checkinteger((L), (arg))
#define luaL_checktype(L, arg, t) lipc_checktype((L), (arg), (t))
#define luaL_checkany(L, arg) lipc_checkanyarg((L), (arg))
#define luaL_checkudata(L, arg, tname) lipc_checkudata((L), (arg), (tname))
#define luaL_checkoption(L, arg, def, lst) lipc_checkoption((L), (arg), (def), (lst))
/* Name every C function of the module table at idx for lipc_argerror:
 * top-level ones by their key ("exec"), those of a sub-table as
 * "<sub>.<key>" ("mq.open"), class methods by their method name. */
void lipc_name_functions(lua_State *L, int idx);
/* Registry key of the table kind -> methods table ({pipe = {read=...}}),
 * filled by lipc_register and exported as ipc._methods. */
#define LIPC_METHODS_KEY "lipc.methods"

/* An integer in [min, max]; a float with an exact integer value is
 * accepted; anything else raises naming the argument. */
lua_Integer lipc_checkrange(lua_State *L, int idx, lua_Integer min, lua_Integer max);
lua_Integer lipc_optrange(lua_State *L, int idx, lua_Integer def, lua_Integer min, lua_Integer max);
/* A size >= 0 that fits size_t and ssize_t. */
size_t lipc_checksize(lua_State *L, int idx);
/* A mode: integer 0..07777 or an octal string ("600", "0600"). */
mode_t lipc_checkmode(lua_State *L, int idx);
/* A signal by name ("TERM", "SIGTERM", "RTMIN+2") or number; raises. */
int lipc_checksignal(lua_State *L, int idx);
/* The same without raising: the signal, or -1 with the reason pushed. */
int lipc_tosignal(lua_State *L, int idx);
/* Set SIGHUP = 1, ... SIGRTMIN, SIGRTMAX in the table on top (the one
 * table of signal names is in core.c). */
void lipc_setsignals(lua_State *L);
/* The name of signo without "SIG" ("TERM", "RTMIN+2") into buf. */
const char *lipc_signame(int signo, char *buf, size_t len);
/* A POSIX IPC name: one leading '/', no other '/', no NUL, 2..maxlen
 * bytes in all.  Raises otherwise. */
const char *lipc_checkposixname(lua_State *L, int idx, size_t maxlen);
/* Write a generated name "<prefix>lipc.<pid>.<unique><suffix>" into buf.
 * The unique part is "<start>-<pidns>-<boot>-<random>": lipc_creator_tag()
 * (what ipc.sweep needs to prove the creator gone) and 8 hex digits from
 * getrandom(2), so other users cannot guess the name; callers create it
 * exclusively and generate again on EEXIST (csrc/system.c, beside the
 * sweep that reads these names). */
void lipc_genname(char *buf, size_t len, const char *prefix, const char *suffix);
/* This process as generated names record it, "<start>-<pidns>-<boot>" in
 * lowercase hex: its start time (field 22 of /proc/self/stat), the inode
 * of its pid namespace, the first 4 digits of the boot id; "0" for what
 * cannot be read (csrc/system.c). */
const char *lipc_creator_tag(void);

/* Options tables: idx may be none/nil (all defaults) or a table whose
 * keys must all be among allowed (NULL-terminated); raises on an unknown
 * key or a non-table. */
void lipc_checkoptions(lua_State *L, int idx, const char *const allowed[]);
/* Raise the one format of a bad option value: "bad argument #<idx> to
 * '<function>' (option '<key>': <fmt...>)". */
int lipc_opterror(lua_State *L, int idx, const char *key, const char *fmt, ...);
int lipc_optbool(lua_State *L, int idx, const char *key, int def);
lua_Integer lipc_optint(lua_State *L, int idx, const char *key, lua_Integer def,
                        lua_Integer min, lua_Integer max);
mode_t lipc_optmode(lua_State *L, int idx, const char *key, mode_t def);
/* A string option (NULL when absent and def is NULL). */
const char *lipc_optstring(lua_State *L, int idx, const char *key, const char *def);

/* ---- process-wide helpers ---------------------------------------------- */

/* fork hygiene: flush every C stdio stream, then fork. */
pid_t lipc_fork(void);
/* Write all of buf to fd without raising SIGPIPE (blocked around the
 * write, a pending one drained).  Returns bytes written or -1 with errno;
 * a single write(2) call, so it may be short. */
ssize_t lipc_write_nosigpipe(int fd, const void *buf, size_t len);

/* The field-th integer (0-based) of a /proc file, or def when it cannot
 * be read. */
long long lipc_proc_value(const char *path, int field, long long def);

/* Write like lipc_write_nosigpipe, through pwritev2 with the RWF_* flags
 * rwf (0: plain write). */
ssize_t lipc_pwrite_nosigpipe(int fd, const void *buf, size_t len, int rwf);

/* The directory for generated socket paths ($TMPDIR or /tmp). */
const char *lipc_tmpdir(void);

/* lstat the POSIX queue name ("/jobs") through a mount of the mqueue file
 * system whose device is dev, found in /proc/self/mountinfo: 0 and *st
 * filled, or an errno value (ENODEV: no such mount) (csrc/system.c). */
struct stat;
int lipc_mqueue_lstat(const char *name, dev_t dev, struct stat *st);

/* Set a table of integer constants at the table on top of the stack. */
typedef struct lipc_const { const char *name; lua_Integer value; } lipc_const;
void lipc_setconsts(lua_State *L, const lipc_const *c);

/* Get (creating) the subtable ipc[name] of the module table at idx and
 * push it. */
void lipc_subtable(lua_State *L, int idx, const char *name);

/* Each family's opener: fills the module table on top of the stack. */
void lipc_open_core(lua_State *L);
void lipc_open_system(lua_State *L);
void lipc_open_audit(lua_State *L);
void lipc_open_proc(lua_State *L);
void lipc_open_pipe(lua_State *L);
void lipc_open_mq(lua_State *L);
void lipc_open_msg(lua_State *L);
void lipc_open_shm(lua_State *L);
void lipc_open_sem(lua_State *L);
void lipc_open_sync(lua_State *L);
void lipc_open_socket(lua_State *L);
void lipc_open_eventfd(lua_State *L);
void lipc_open_signal(lua_State *L);
void lipc_open_poll(lua_State *L);
void lipc_open_codec(lua_State *L);
void lipc_open_pool(lua_State *L);
void lipc_open_ring(lua_State *L);
void lipc_open_task(lua_State *L);
void lipc_open_timer(lua_State *L);
void lipc_open_waiter(lua_State *L);
void lipc_open_fd(lua_State *L);

#endif
