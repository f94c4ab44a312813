/*
 * socket.c - sockets behind one address syntax: ipc.listen, ipc.connect,
 * ipc.socketpair, ipc.socket.raw; the lipc.socket object (stream sockets
 * share the byte-stream methods of stream.h) and lipc.fd, the object a
 * received descriptor (SCM_RIGHTS) becomes.
 *
 * Addresses: tcp://host:port, tcp6://[addr]:port, udp://host:port,
 * udp6://[addr]:port, unix:/path, unix:@abstract, unixgram:..., seqpacket:...
 * (and ip://addr, ip6://[addr] for raw sockets).
 */
#include "core.h"
#include "stream.h"
#include "fd.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Largest Unix socket path (sun_path holds it plus the NUL). */
#define UNIX_PATH_MAXLEN (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)
/* Default and largest buffer of recv/recvfrom on message sockets. */
#define DGRAM_DEFAULT 65536
#define DGRAM_MAX (64 * 1024 * 1024)
/* Largest single read of recv on a stream socket (short reads are fine). */
#define STREAM_MAX (1024 * 1024)

/* Address schemes. */
enum { S_TCP = 1, S_TCP6, S_UDP, S_UDP6, S_UNIX, S_UNIXGRAM, S_SEQPACKET, S_IP, S_IP6 };

/* A parsed address. */
typedef struct addr {
  int scheme;
  int family, type;
  struct sockaddr_storage sa;
  socklen_t len;
  int path;          /* a Unix path (not abstract, not unnamed) */
  int generate;      /* "unix:" with nothing after it: generate a path */
} addr;

/* A socket: a lipc_stream (read/write/lines...) plus what sockets know. */
typedef struct lsock {
  lipc_stream s;
  int family, type;
  int listening;
  int scheme;                 /* scheme used to spell addresses */
  dev_t dev; ino_t ino;       /* the socket file this owner bound */
  char path[UNIX_PATH_MAXLEN + 1];  /* bound path removed by the owner */
  char name[192];             /* printable address for tostring/audit/errors */
} lsock;

static int sock_release(lipc_handle *h, int remove_name);
static void sock_describe(lipc_handle *h, luaL_Buffer *b);
static void sock_audit(lua_State *L, lipc_handle *h);

static const lipc_class sock_class = {
  "lipc.socket", "socket", sizeof(lsock), sock_release, sock_describe, sock_audit,
  LIPC_CLASS_STREAM
};

static void fd_describe(lipc_handle *h, luaL_Buffer *b);
static int fd_release(lipc_handle *h, int remove_name);

/* A received descriptor: a plain byte stream. */
static const lipc_class fd_class = {
  "lipc.fd", "fd", sizeof(lipc_stream), fd_release, fd_describe, NULL, LIPC_CLASS_STREAM
};

/* ---- release, describe, audit ----------------------------------------- */

/* Close the socket; the owner of a bound path removes it (if still ours). */
static int sock_release(lipc_handle *h, int remove_name) {
  lsock *k = (lsock *)h;
  if (remove_name && k->path[0]) {
    struct stat st;
    if (lstat(k->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == k->dev &&
        st.st_ino == k->ino)
      (void)unlink(k->path);
  }
  k->path[0] = '\0';
  return lipc_stream_release(&k->s);
}

/* "fd=5, tcp://127.0.0.1:80, listening". */
static void sock_describe(lipc_handle *h, luaL_Buffer *b) {
  lsock *k = (lsock *)h;
  char tmp[32];
  snprintf(tmp, sizeof tmp, "fd=%d", h->fd);
  luaL_addstring(b, tmp);
  if (k->name[0]) {
    luaL_addstring(b, ", ");
    luaL_addstring(b, k->name);
  }
  if (k->listening) luaL_addstring(b, ", listening");
}

/* Audit fields: name = the address, fd. */
static void sock_audit(lua_State *L, lipc_handle *h) {
  lsock *k = (lsock *)h;
  lua_pushstring(L, k->name);
  lua_setfield(L, -2, "name");
  lua_pushinteger(L, h->fd);
  lua_setfield(L, -2, "fd");
}

/* Close a received descriptor. */
static int fd_release(lipc_handle *h, int remove_name) {
  (void)remove_name;
  return lipc_stream_release((lipc_stream *)h);
}

/* "fd=7". */
static void fd_describe(lipc_handle *h, luaL_Buffer *b) {
  char tmp[32];
  snprintf(tmp, sizeof tmp, "fd=%d", h->fd);
  luaL_addstring(b, tmp);
}

/* ---- addresses --------------------------------------------------------- */

/* The scheme's URL prefix. */
static const char *scheme_prefix(int scheme) {
  switch (scheme) {
    case S_TCP: return "tcp://";
    case S_TCP6: return "tcp6://";
    case S_UDP: return "udp://";
    case S_UDP6: return "udp6://";
    case S_UNIX: return "unix:";
    case S_UNIXGRAM: return "unixgram:";
    case S_SEQPACKET: return "seqpacket:";
    case S_IP: return "ip://";
    case S_IP6: return "ip6://";
    default: return "?:";
  }
}

/* The scheme that spells addresses of a socket of family and type. */
static int scheme_of(int family, int type, int raw6) {
  if (family == AF_UNIX)
    return type == SOCK_STREAM ? S_UNIX : type == SOCK_DGRAM ? S_UNIXGRAM : S_SEQPACKET;
  if (type == SOCK_RAW) return raw6 || family == AF_INET6 ? S_IP6 : S_IP;
  if (family == AF_INET6) return type == SOCK_STREAM ? S_TCP6 : S_UDP6;
  return type == SOCK_STREAM ? S_TCP : S_UDP;
}

/* Push the URL of a socket address, or nil for an unnamed one.  Also copy a
 * printable version into out (when out is not NULL). */
static void push_sockaddr(lua_State *L, int scheme, const struct sockaddr_storage *sa,
                          socklen_t len, char *out, size_t outlen) {
  char host[INET6_ADDRSTRLEN];
  luaL_Buffer b;
  if (sa->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    if (scheme == S_IP) lua_pushfstring(L, "ip://%s", host);
    else lua_pushfstring(L, "%s%s:%d", scheme_prefix(scheme), host, (int)ntohs(in->sin_port));
  } else if (sa->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    if (scheme == S_IP6) lua_pushfstring(L, "ip6://[%s]", host);
    else lua_pushfstring(L, "%s[%s]:%d", scheme_prefix(scheme), host, (int)ntohs(in6->sin6_port));
  } else if (sa->ss_family == AF_UNIX && len > offsetof(struct sockaddr_un, sun_path)) {
    const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
    size_t n = len - offsetof(struct sockaddr_un, sun_path);
    luaL_buffinit(L, &b);
    luaL_addstring(&b, scheme_prefix(scheme));
    if (un->sun_path[0] == '\0') {  /* abstract: the bytes after the NUL */
      luaL_addchar(&b, '@');
      luaL_addlstring(&b, un->sun_path + 1, n - 1);
    } else {
      luaL_addlstring(&b, un->sun_path, strnlen(un->sun_path, n));
    }
    luaL_pushresult(&b);
  } else {
    lua_pushnil(L);
    if (out) snprintf(out, outlen, "%s", sa->ss_family == AF_UNIX ? scheme_prefix(scheme) : "");
    if (out && sa->ss_family == AF_UNIX) strncat(out, "(unnamed)", outlen - strlen(out) - 1);
    return;
  }
  if (out) {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    size_t i;
    for (i = 0; i < n && i + 1 < outlen; i++)
      out[i] = (s[i] >= 32 && s[i] < 127) ? s[i] : '?';
    out[i] = '\0';
  }
}

/* Resolve host (numeric, or a name such as localhost) of family into sa;
 * 0 or -1 with a message pushed as an error triple (3 values). */
static int resolve_host(lua_State *L, const char *host, int family, int type, addr *a) {
  void *dst = family == AF_INET ? (void *)&((struct sockaddr_in *)&a->sa)->sin_addr
                                : (void *)&((struct sockaddr_in6 *)&a->sa)->sin6_addr;
  if (inet_pton(family, host, dst) == 1) return 0;
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = family;
  hints.ai_socktype = type == SOCK_RAW ? 0 : type;
  int rc = getaddrinfo(host, NULL, &hints, &res);
  if (rc != 0 || res == NULL) {
    int err = rc == EAI_SYSTEM ? errno : ENOENT;
    lua_pushnil(L);
    lua_pushfstring(L, "getaddrinfo %s: %s", host, rc == EAI_SYSTEM ? strerror(err) : gai_strerror(rc));
    lua_pushinteger(L, err);
    if (res) freeaddrinfo(res);
    return -1;
  }
  if (family == AF_INET)
    ((struct sockaddr_in *)&a->sa)->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
  else
    ((struct sockaddr_in6 *)&a->sa)->sin6_addr = ((struct sockaddr_in6 *)res->ai_addr)->sin6_addr;
  freeaddrinfo(res);
  return 0;
}

/* Parse the URL at idx into a.  Malformed URLs raise; a host name that
 * does not resolve pushes the error triple and returns -1.  allow_gen:
 * "unix:" alone means "generate a path".  raw: ip:// or ip6:// expected. */
static int parse_url(lua_State *L, int idx, addr *a, int allow_gen, int raw) {
  size_t len;
  const char *url = luaL_checklstring(L, idx, &len);
  memset(a, 0, sizeof *a);
  static const struct { const char *p; int scheme, family, type; } S[] = {
    {"tcp://", S_TCP, AF_INET, SOCK_STREAM}, {"tcp6://", S_TCP6, AF_INET6, SOCK_STREAM},
    {"udp://", S_UDP, AF_INET, SOCK_DGRAM}, {"udp6://", S_UDP6, AF_INET6, SOCK_DGRAM},
    {"unix:", S_UNIX, AF_UNIX, SOCK_STREAM}, {"unixgram:", S_UNIXGRAM, AF_UNIX, SOCK_DGRAM},
    {"seqpacket:", S_SEQPACKET, AF_UNIX, SOCK_SEQPACKET},
    {"ip://", S_IP, AF_INET, SOCK_RAW}, {"ip6://", S_IP6, AF_INET6, SOCK_RAW},
    {NULL, 0, 0, 0}
  };
  const char *rest = NULL;
  for (int i = 0; S[i].p; i++) {
    size_t pl = strlen(S[i].p);
    if (strncmp(url, S[i].p, pl) == 0) {
      a->scheme = S[i].scheme; a->family = S[i].family; a->type = S[i].type;
      rest = url + pl;
      break;
    }
  }
  if (rest == NULL || (raw != (a->type == SOCK_RAW)))
    return luaL_argerror(L, idx, lua_pushfstring(L, "unsupported address '%s' (expected %s)", url,
                                                 raw ? "ip://addr or ip6://[addr]"
                                                     : "tcp://host:port, udp://host:port, unix:/path, "
                                                       "unix:@name, unixgram:..., seqpacket:..."));
  /* only an abstract Unix name may hold NUL bytes (the kernel takes them) */
  size_t n = len - (size_t)(rest - url);
  if ((a->family != AF_UNIX || n == 0 || rest[0] != '@') && memchr(url, '\0', len))
    return luaL_argerror(L, idx, "address contains a NUL byte");
  if (a->family == AF_UNIX) {
    struct sockaddr_un *un = (struct sockaddr_un *)&a->sa;
    un->sun_family = AF_UNIX;
    if (n == 0) {
      if (!allow_gen) return luaL_argerror(L, idx, "empty Unix socket path");
      a->generate = 1;
      a->path = 1;
      return 0;
    }
    if (rest[0] == '@') {
      if (n - 1 > UNIX_PATH_MAXLEN)
        return luaL_argerror(L, idx, lua_pushfstring(L, "abstract socket name longer than %d bytes",
                                                     (int)UNIX_PATH_MAXLEN));
      if (n == 1) return luaL_argerror(L, idx, "empty abstract socket name");
      un->sun_path[0] = '\0';
      memcpy(un->sun_path + 1, rest + 1, n - 1);
      a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
      return 0;
    }
    if (n > UNIX_PATH_MAXLEN)
      return luaL_argerror(L, idx, lua_pushfstring(L, "Unix socket path longer than %d bytes: '%s'",
                                                   (int)UNIX_PATH_MAXLEN, rest));
    memcpy(un->sun_path, rest, n + 1);
    a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    a->path = 1;
    return 0;
  }
  /* host part: [v6] or up to the last ':' */
  char host[256];
  const char *port = NULL;
  size_t hl;
  if (rest[0] == '[') {
    const char *close = strchr(rest, ']');
    if (close == NULL) return luaL_argerror(L, idx, lua_pushfstring(L, "missing ']' in '%s'", url));
    hl = (size_t)(close - rest - 1);
    if (hl >= sizeof host) return luaL_argerror(L, idx, "host too long");
    memcpy(host, rest + 1, hl);
    if (close[1] == ':') port = close + 2;
    else if (close[1] != '\0') return luaL_argerror(L, idx, lua_pushfstring(L, "bad address '%s'", url));
  } else {
    const char *colon = strrchr(rest, ':');
    if (a->type != SOCK_RAW && colon && memchr(rest, ':', (size_t)(colon - rest)))
      return luaL_argerror(L, idx, lua_pushfstring(L, "IPv6 addresses go in brackets: '%s'", url));
    hl = (a->type == SOCK_RAW || colon == NULL) ? strlen(rest) : (size_t)(colon - rest);
    if (hl >= sizeof host) return luaL_argerror(L, idx, "host too long");
    memcpy(host, rest, hl);
    if (a->type != SOCK_RAW && colon) port = colon + 1;
  }
  host[hl] = '\0';
  if (hl == 0) return luaL_argerror(L, idx, lua_pushfstring(L, "missing host in '%s'", url));
  if (a->family == AF_INET && strchr(host, ':'))
    return luaL_argerror(L, idx, lua_pushfstring(L, "IPv6 address in '%s' (use tcp6://, udp6:// or ip6://)", url));
  long p = 0;
  if (a->type != SOCK_RAW) {
    if (port == NULL || *port == '\0')
      return luaL_argerror(L, idx, lua_pushfstring(L, "missing port in '%s'", url));
    if (strspn(port, "0123456789") != strlen(port) || strlen(port) > 5)
      return luaL_argerror(L, idx, lua_pushfstring(L, "bad port in '%s'", url));
    p = strtol(port, NULL, 10);
    if (p > 65535) return luaL_argerror(L, idx, lua_pushfstring(L, "port out of range (0 to 65535) in '%s'", url));
  } else if (port != NULL) {
    return luaL_argerror(L, idx, lua_pushfstring(L, "raw addresses have no port: '%s'", url));
  }
  if (a->family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)&a->sa;
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)p);
    a->len = sizeof *in;
  } else {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->sa;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)p);
    a->len = sizeof *in6;
  }
  return resolve_host(L, host, a->family, a->type, a);
}

/* ---- object creation --------------------------------------------------- */

/* A new closed lipc.socket userdata. */
static lsock *new_sock(lua_State *L, int family, int type, int scheme) {
  lsock *k = lipc_new(L, &sock_class, 0);
  k->family = family;
  k->type = type;
  k->scheme = scheme;
  k->s.dirs = LIPC_STREAM_READ | LIPC_STREAM_WRITE;
  k->s.socket = 1;
  lipc_stream_attach(L, &k->s);
  return k;
}

/* Put fd into k and mark it open. */
static void sock_open(lsock *k, int fd) {
  k->s.h.fd = fd;
  k->s.h.open = 1;
}

/* The name of k (the printable address) for error messages. */
static const char *sock_name(lsock *k) {
  return k->name[0] ? k->name : scheme_prefix(k->scheme);
}

/* Set a printable URL of the socket address into k->name (no Lua value left). */
static void set_name(lua_State *L, lsock *k, const struct sockaddr_storage *sa, socklen_t len) {
  push_sockaddr(L, k->scheme, sa, len, k->name, sizeof k->name);
  lua_pop(L, 1);
}

/* ---- descriptors for csrc/fd.c (fd.h) ------------------------------------ */

/* Push a new closed lipc.fd. */
lipc_stream *lipc_fdobj_new(lua_State *L) {
  lipc_stream *o = lipc_new(L, &fd_class, 0);
  o->dirs = LIPC_STREAM_READ | LIPC_STREAM_WRITE;
  return o;
}

/* Push a new closed lipc.socket describing the socket fd, or NULL (nothing
 * pushed) for a family lipc has no addresses for. */
lipc_stream *lipc_socket_adopt(lua_State *L, int fd) {
  int family = -1, type = -1, acc = 0;
  socklen_t l = sizeof family;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &l) != 0) return NULL;
  l = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) != 0) return NULL;
  if (family != AF_UNIX && family != AF_INET && family != AF_INET6) return NULL;
  l = sizeof acc;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l) != 0) acc = 0;
  lsock *k = new_sock(L, family, type, scheme_of(family, type, 0));
  k->listening = acc != 0;
  if (k->listening) {
    /* accept4 must never block past a deadline or in a task: an adopted
     * listener's description is made nonblocking (shared with whoever
     * else holds it) */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK)) (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    k->s.keep_nonblock = 1;
  }
  struct sockaddr_storage sa;
  memset(&sa, 0, sizeof sa);
  socklen_t len = sizeof sa;
  if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0) set_name(L, k, &sa, len);
  return &k->s;
}

/* 1 when a Unix socket is listening (or bound) at the path of a: only
 * ECONNREFUSED proves nobody is.  Nonblocking, so a live server with a
 * full backlog answers EAGAIN instead of making us wait. */
static int path_is_live(const addr *a) {
  int fd = socket(AF_UNIX, a->type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return 1;
  int rc = connect(fd, (const struct sockaddr *)&a->sa, a->len);
  int err = errno;
  close(fd);
  return !(rc < 0 && err == ECONNREFUSED);
}

/* Bind fd to a (Unix path): created with mode; with replace, a stale
 * socket file (no one answers) is replaced; anything else at the path is
 * never removed.  Returns 0 or an errno value. */
static int bind_unix_path(int fd, addr *a, mode_t mode, int replace) {
  struct sockaddr_un *un = (struct sockaddr_un *)&a->sa;
  for (int attempt = 0; ; attempt++) {
    mode_t old = umask((mode_t)(0777 & ~mode));
    int rc = bind(fd, (struct sockaddr *)&a->sa, a->len);
    int err = errno;
    umask(old);
    if (rc == 0) {
      if (chmod(un->sun_path, mode) != 0) {  /* never leave a file nobody owns */
        int e = errno;
        unlink(un->sun_path);
        return e;
      }
      return 0;
    }
    if (err != EADDRINUSE || attempt > 0 || !replace) return err;
    struct stat st;
    if (lstat(un->sun_path, &st) != 0 || !S_ISSOCK(st.st_mode)) return EADDRINUSE;
    if (path_is_live(a)) return EADDRINUSE;
    if (unlink(un->sun_path) != 0 && errno != ENOENT) return EADDRINUSE;
  }
}

/* Put a generated path ($TMPDIR/lipc.<pid>.<unique>.sock) into a; raises
 * when it does not fit a Unix socket address. */
static void gen_path(lua_State *L, addr *a) {
  struct sockaddr_un *un = (struct sockaddr_un *)&a->sa;
  char prefix[PATH_MAX];
  snprintf(prefix, sizeof prefix, "%s/", lipc_tmpdir());
  char path[PATH_MAX];
  lipc_genname(path, sizeof path, prefix, ".sock");
  size_t len = strlen(path);
  if (len > UNIX_PATH_MAXLEN)
    luaL_error(L, "generated socket path longer than %d bytes: '%s' (set TMPDIR shorter)",
               (int)UNIX_PATH_MAXLEN, path);
  memcpy(un->sun_path, path, len + 1);
  a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
}

/* Set a boolean socket option (1/0). */
static int setbool(int fd, int level, int opt, int v) {
  return setsockopt(fd, level, opt, &v, sizeof v);
}

/* ipc.listen(url, opts): a listening (stream, seqpacket) or bound
 * (datagram) socket. */
static int lsocket_listen(lua_State *L) {
  static const char *const allowed[] = {"backlog", "reuseaddr", "reuseport", "mode", "persist", NULL};
  addr a;
  lipc_checkoptions(L, 2, allowed);
  if (parse_url(L, 1, &a, 1, 0) < 0) return 3;
  int backlog = (int)lipc_optint(L, 2, "backlog", SOMAXCONN, 0, INT_MAX);
  int tcp = a.family != AF_UNIX && a.type == SOCK_STREAM;
  int reuseaddr = lipc_optbool(L, 2, "reuseaddr", tcp);
  int reuseport = lipc_optbool(L, 2, "reuseport", 0);
  mode_t mode = lipc_optmode(L, 2, "mode", 0600);
  int persist = lipc_optbool(L, 2, "persist", 0);
  struct sockaddr_un *un = (struct sockaddr_un *)&a.sa;
  if (a.generate) gen_path(L, &a);
  lsock *k = new_sock(L, a.family, a.type, a.scheme);
  k->s.h.persist = (unsigned char)persist;
  push_sockaddr(L, a.scheme, &a.sa, a.len, k->name, sizeof k->name);
  lua_pop(L, 1);
  int fd;
  LIPC_FDCALL(L, fd, socket(a.family, a.type | SOCK_CLOEXEC, 0));
  if (fd < 0) return lipc_error(L, errno, "socket", k->name);
  sock_open(k, fd);  /* from here on, GC closes fd */
  if (reuseaddr && setbool(fd, SOL_SOCKET, SO_REUSEADDR, 1) != 0)
    return lipc_error(L, errno, "setsockopt SO_REUSEADDR", k->name);
  if (reuseport && setbool(fd, SOL_SOCKET, SO_REUSEPORT, 1) != 0)
    return lipc_error(L, errno, "setsockopt SO_REUSEPORT", k->name);
  int err;
  if (a.path) {
    err = bind_unix_path(fd, &a, mode, !a.generate);
    /* a generated name already taken (a leftover of a killed process whose
     * pid we reuse, or a squatter): the next name, never removing theirs */
    for (int tries = 1; err == EADDRINUSE && a.generate && tries < 100; tries++) {
      gen_path(L, &a);
      set_name(L, k, &a.sa, a.len);
      err = bind_unix_path(fd, &a, mode, 0);
    }
    if (err == 0) {
      struct stat st;
      memcpy(k->path, un->sun_path, strlen(un->sun_path) + 1);
      k->s.h.owns = 1;
      if (lstat(k->path, &st) == 0) { k->dev = st.st_dev; k->ino = st.st_ino; }
    }
  } else {
    err = bind(fd, (struct sockaddr *)&a.sa, a.len) == 0 ? 0 : errno;
  }
  if (err != 0) return lipc_error(L, err, "bind", k->name);
  if (a.type != SOCK_DGRAM) {
    /* a listener that cannot listen is released at once (its path too) */
    if (listen(fd, backlog) != 0) {
      err = errno;
      (void)lipc_release(&k->s.h);
      return lipc_error(L, err, "listen", k->name);
    }
    k->listening = 1;
    k->s.keep_nonblock = 1;
    /* accept waits with poll: a nonblocking listener never blocks past a
     * deadline when another process takes the connection first */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
      err = errno;
      (void)lipc_release(&k->s.h);
      return lipc_error(L, err, "fcntl", k->name);
    }
  }
  struct sockaddr_storage sa;
  socklen_t sl = sizeof sa;
  if (getsockname(fd, (struct sockaddr *)&sa, &sl) == 0) set_name(L, k, &sa, sl);
  return 1;
}

/* The try of a connect (see core.h, "the one wait path"): the socket is
 * w->p, the parsed address a userdata at stack index 4.  0 once
 * connected, LIPC_AGAIN / LIPC_EINTR, or an errno value.
 * Unix: a full backlog makes the kernel's connect wait rather than fail;
 * when the call may block it does, on SO_SNDTIMEO set to the time left;
 * otherwise a nonblocking connect answers EAGAIN and the try is repeated
 * after a backoff (nothing to poll for).  IP: a nonblocking connect
 * (w->acc[0] = 1 once started, the file flags to restore in w->acc[1]),
 * poll for writability, then SO_ERROR. */
static int connect_step(lua_State *L, lipc_wait *w) {
  lsock *k = w->p;
  const addr *a = lua_touserdata(L, 4);
  int fd = k->s.h.fd;
  int err;
  if (a->family == AF_UNIX) {
    if (w->block) {
      struct timespec ts;
      struct timeval tv = {0, 0};
      if (lipc_deadline_left(&w->d, &ts) == 0) {
        tv.tv_sec = ts.tv_sec;
        tv.tv_usec = ts.tv_nsec / 1000;
        if (tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 1;  /* 0 would mean forever */
      }
      if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) return errno;
      err = connect(fd, (const struct sockaddr *)&a->sa, a->len) == 0 ? 0 : errno;
      struct timeval zero = {0, 0};
      (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &zero, sizeof zero);
    } else {
      int fl = fcntl(fd, F_GETFL);
      if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) return errno;
      err = connect(fd, (const struct sockaddr *)&a->sa, a->len) == 0 ? 0 : errno;
      if (!(fl & O_NONBLOCK)) (void)fcntl(fd, F_SETFL, fl);
    }
    if (err == EAGAIN || err == EINPROGRESS) {
      w->fd = -1;  /* the backlog frees up without an event: back off */
      return LIPC_AGAIN;
    }
    return err == EINTR ? LIPC_EINTR : err;
  }
  if (w->acc[0] == 0) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return errno;
    w->acc[0] = 1;
    w->acc[1] = fl;
    err = connect(fd, (const struct sockaddr *)&a->sa, a->len) == 0 ? 0 : errno;
    if (err != EINPROGRESS && err != EINTR) goto done;
  }
  struct pollfd p = { .fd = fd, .events = POLLOUT, .revents = 0 };
  int n = poll(&p, 1, 0);
  if (n == 0 || (n < 0 && errno == EINTR)) {
    w->fd = fd;
    w->events = POLLOUT;
    return LIPC_AGAIN;
  }
  if (n < 0) {
    err = errno;
  } else {
    socklen_t el = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) err = errno;
  }
done:
  if (fcntl(fd, F_SETFL, (int)w->acc[1]) < 0 && err == 0) err = errno;
  w->acc[0] = 0;
  return err;
}

/* Put the parsed address a into a userdata at stack index 4, where
 * connect_step finds it after any wait. */
static void push_addr(lua_State *L, const addr *a) {
  lua_settop(L, 3);
  addr *box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = *a;
}

/* The end of ipc.connect that did not connect (also its w->stop). */
static int connect_new_stop(lua_State *L, lipc_wait *w, int err) {
  lsock *k = w->p;
  (void)lipc_release(&k->s.h);
  return lipc_fail(L, err, "connect", k->name);
}

/* The try of ipc.connect: the new socket at 3. */
static int try_connect_new(lua_State *L, lipc_wait *w) {
  int r = connect_step(L, w);
  if (r == 0) { lua_settop(L, 3); return 1; }
  if (r < 0) return r;
  return connect_new_stop(L, w, r);
}

/* ipc.connect(url, timeout): a connected socket. */
static int lsocket_connect(lua_State *L) {
  addr a;
  if (parse_url(L, 1, &a, 0, 0) < 0) return 3;
  lipc_wait w;
  lipc_wait_init(L, &w, 2, try_connect_new);
  lua_settop(L, 2);
  lsock *k = new_sock(L, a.family, a.type, a.scheme);  /* at 3 */
  push_addr(L, &a);                                    /* at 4 */
  push_sockaddr(L, a.scheme, &a.sa, a.len, k->name, sizeof k->name);
  lua_pop(L, 1);
  int fd;
  LIPC_FDCALL(L, fd, socket(a.family, a.type | SOCK_CLOEXEC, 0));
  if (fd < 0) return lipc_error(L, errno, "socket", k->name);
  sock_open(k, fd);
  w.p = k;
  w.stop = connect_new_stop;
  return lipc_run(L, &w);
}

/* The end of s:connect that did not connect (also its w->stop). */
static int connect_stop(lua_State *L, lipc_wait *w, int err) {
  lsock *k = w->p;
  if (w->acc[0] != 0) (void)fcntl(k->s.h.fd, F_SETFL, (int)w->acc[1]);  /* as it was */
  const addr *a = lua_touserdata(L, 4);
  push_sockaddr(L, a->scheme, &a->sa, a->len, NULL, 0);
  return lipc_fail(L, err, "connect", lua_tostring(L, -1));
}

/* The try of s:connect. */
static int try_connect(lua_State *L, lipc_wait *w) {
  int r = connect_step(L, w);
  if (r == 0) { lua_pushboolean(L, 1); return 1; }
  if (r < 0) return r;
  return connect_stop(L, w, r);
}

/* s:connect(url, timeout): connect an existing (typically bound UDP or
 * unixgram) socket to a peer; true. */
static int lsocket_mconnect(lua_State *L) {
  lsock *k = lipc_check(L, 1, &sock_class);
  addr a;
  if (parse_url(L, 2, &a, 0, 0) < 0) return 3;
  if (a.family != k->family || a.type != k->type)
    return luaL_argerror(L, 2, lua_pushfstring(L, "address does not match the socket (%s)",
                                               scheme_prefix(k->scheme)));
  lipc_wait w;
  w.stop = connect_stop;
  w.call = "connect";
  w.acc[0] = w.acc[1] = 0;
  push_addr(L, &a);  /* at 4 */
  return lipc_stream_run(L, &w, &k->s, 3, try_connect);
}

/* ipc.socketpair(type): two connected AF_UNIX sockets. */
static int lsocket_socketpair(lua_State *L) {
  static const char *const types[] = {"stream", "dgram", "seqpacket", NULL};
  static const int tv[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};
  int type = tv[luaL_checkoption(L, 1, "stream", types)];
  int scheme = scheme_of(AF_UNIX, type, 0);
  lsock *a = new_sock(L, AF_UNIX, type, scheme);
  lsock *b = new_sock(L, AF_UNIX, type, scheme);
  int sv[2];
  int rc;
  LIPC_FDCALL(L, rc, socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv));
  if (rc != 0) return lipc_error(L, errno, "socketpair", NULL);
  snprintf(a->name, sizeof a->name, "socketpair:%s", types[type == SOCK_STREAM ? 0 : type == SOCK_DGRAM ? 1 : 2]);
  memcpy(b->name, a->name, sizeof a->name);
  sock_open(a, sv[0]);
  sock_open(b, sv[1]);
  return 2;
}

/* ipc.socket.raw(proto): a raw IP socket ("icmp", "icmp6" or a number). */
static int lsocket_raw(lua_State *L) {
  int family = AF_INET, proto;
  if (lua_type(L, 1) == LUA_TSTRING) {
    static const char *const names[] = {"icmp", "icmp6", NULL};
    int i = luaL_checkoption(L, 1, NULL, names);
    proto = i == 0 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
    if (i == 1) family = AF_INET6;
  } else {
    proto = (int)lipc_checkrange(L, 1, 1, 255);
  }
  lsock *k = new_sock(L, family, SOCK_RAW, family == AF_INET6 ? S_IP6 : S_IP);
  snprintf(k->name, sizeof k->name, "%s(proto %d)", family == AF_INET6 ? "ip6://" : "ip://", proto);
  int fd;
  LIPC_FDCALL(L, fd, socket(family, SOCK_RAW | SOCK_CLOEXEC, proto));
  if (fd < 0) return lipc_error(L, errno, "socket", family == AF_INET6 ? "raw ip6" : "raw ip");
  sock_open(k, fd);
  return 1;
}

/* ---- methods ------------------------------------------------------------ */

/* The open lipc.socket at idx; raises otherwise. */
static lsock *checksock(lua_State *L, int idx) {
  return lipc_check(L, idx, &sock_class);
}

/* s:type(): "stream", "dgram", "seqpacket" (or "raw"). */
static int lsocket_type(lua_State *L) {
  lsock *k = checksock(L, 1);
  lua_pushstring(L, k->type == SOCK_DGRAM ? "dgram" : k->type == SOCK_SEQPACKET ? "seqpacket" :
                    k->type == SOCK_RAW ? "raw" : "stream");
  return 1;
}

/* The end of a socket call that did not succeed (the w->stop of those
 * without progress to report): the timeout or the error triple, named
 * after w->call and the socket. */
static int sock_stop(lua_State *L, lipc_wait *w, int err) {
  return lipc_fail(L, err, w->call, sock_name(w->p));
}

/* After a socket call said -1: wait for events after EAGAIN, retry after
 * EINTR, or fail. */
static int sock_failed(lua_State *L, lipc_wait *w, short events) {
  int err = errno;
  if (err == EAGAIN || err == EWOULDBLOCK) {
    w->fd = ((lsock *)w->p)->s.h.fd;
    w->events = events;
    return LIPC_AGAIN;
  }
  if (err == EINTR) return LIPC_EINTR;
  return lipc_error(L, err, w->call, sock_name(w->p));
}

/* Prepare w for the socket call named call (run it with lipc_stream_run:
 * a nonblocking socket without a timeout tries once). */
static void sock_call(lipc_wait *w, const char *call) {
  w->stop = sock_stop;
  w->call = call;
  w->acc[0] = w->acc[1] = 0;
}

/* The flags that make a call on w nonblocking unless it may block with
 * no deadline (then one plain blocking call: as fast as C). */
static int dontwait(const lipc_wait *w) {
  return w->block && w->d.forever ? 0 : MSG_DONTWAIT;
}

/* The try of accept: the new socket waits at 3.  A listener is kept
 * nonblocking, so accept4 never blocks. */
static int try_accept(lua_State *L, lipc_wait *w) {
  lsock *k = w->p;
  lsock *c = lua_touserdata(L, 3);
  for (;;) {
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    int fd;
    LIPC_FDCALL(L, fd, accept4(k->s.h.fd, (struct sockaddr *)&sa, &sl, SOCK_CLOEXEC));
    if (fd >= 0) {
      sock_open(c, fd);
      set_name(L, c, &sa, sl);
      if (c->name[0] == '\0' || strstr(c->name, "(unnamed)")) memcpy(c->name, k->name, sizeof c->name);
      lua_settop(L, 3);
      return 1;
    }
    if (errno == ECONNABORTED) continue;  /* that one is gone: the next */
    /* a shut-down Unix listener polls readable and says EAGAIN forever:
     * the wait path backs off */
    return sock_failed(L, w, POLLIN);
  }
}

/* s:accept(timeout): the next connection as a new socket. */
static int lsocket_accept(lua_State *L) {
  lsock *k = checksock(L, 1);
  lipc_wait w;
  sock_call(&w, "accept");
  lua_settop(L, 2);
  new_sock(L, k->family, k->type, k->scheme);  /* at 3 */
  return lipc_stream_run(L, &w, &k->s, 2, try_accept);
}

/* 1 for sendto (the address is a userdata at 5; w->acc[1] = 1), 0 for
 * send. */
static int is_sendto(const lipc_wait *w) {
  return w->acc[1] != 0;
}

/* The end of a send that did not finish (its w->stop): the bytes sent so
 * far (a stream socket), or the timeout / error triple; sendto names the
 * address (the userdata at 5). */
static int send_stop(lua_State *L, lipc_wait *w, int err) {
  if (w->acc[0] > 0) { lua_pushinteger(L, w->acc[0]); return 1; }
  if (is_sendto(w)) {  /* "sendto" */
    const addr *a = lua_touserdata(L, 5);
    push_sockaddr(L, a->scheme, &a->sa, a->len, NULL, 0);
    return lipc_fail(L, err, w->call, lua_tostring(L, -1));
  }
  return sock_stop(L, w, err);
}

/* The try of send and sendto: the data is argument 2, the address of
 * sendto a userdata at 5; the bytes sent so far are in w->acc[0].  A
 * stream socket sends everything when blocking, else what fits until it
 * would block; a message socket sends one message. */
static int try_send(lua_State *L, lipc_wait *w) {
  lsock *k = w->p;
  size_t len;
  const char *buf = lua_tolstring(L, 2, &len);
  const addr *a = is_sendto(w) ? lua_touserdata(L, 5) : NULL;
  int stream = k->type == SOCK_STREAM;
  int flags = MSG_NOSIGNAL | dontwait(w);
  size_t done = (size_t)w->acc[0];
  for (;;) {
    ssize_t n = sendto(k->s.h.fd, buf + done, len - done, flags,
                       a ? (const struct sockaddr *)&a->sa : NULL, a ? a->len : 0);
    if (n < 0) {
      int err = errno;
      if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
        if (is_sendto(w)) return send_stop(L, w, err);  /* names the address */
        return lipc_error(L, err, w->call, sock_name(k));
      }
      /* a unixgram receiver's queue can be full while poll says writable:
       * the wait path backs off */
      return sock_failed(L, w, POLLOUT);
    }
    done += (size_t)n;
    w->acc[0] = (lua_Integer)done;
    w->tries = 0;  /* progress: the next EAGAIN waits without a backoff */
    if (!stream || done >= len) { lua_pushinteger(L, (lua_Integer)done); return 1; }
    /* a signal cut a blocking send short: after Ctrl-C lipc_run reports
     * the count (send_stop), otherwise the rest is sent */
    if (!(flags & MSG_DONTWAIT)) return LIPC_EINTR;
  }
}

/* s:send(data, timeout): bytes sent (all of them on a blocking stream). */
static int lsocket_send(lua_State *L) {
  lsock *k = checksock(L, 1);
  luaL_checkstring(L, 2);
  lipc_wait w;
  sock_call(&w, "send");
  w.stop = send_stop;
  return lipc_stream_run(L, &w, &k->s, 3, try_send);
}

/* s:sendto(data, url, timeout): send one datagram to an address. */
static int lsocket_sendto(lua_State *L) {
  lsock *k = checksock(L, 1);
  luaL_checkstring(L, 2);
  addr a;
  if (parse_url(L, 3, &a, 0, k->type == SOCK_RAW) < 0) return 3;
  if (a.family != k->family)
    return luaL_argerror(L, 3, lua_pushfstring(L, "address family does not match the socket (%s)",
                                               scheme_prefix(k->scheme)));
  lipc_wait w;
  sock_call(&w, "sendto");
  w.stop = send_stop;
  w.acc[1] = 1;
  lua_settop(L, 4);
  addr *box = lua_newuserdatauv(L, sizeof *box, 0);  /* at 5: kept across waits */
  *box = a;
  return lipc_stream_run(L, &w, &k->s, 4, try_send);
}

/* The buffer size argument of recv/recvfrom. */
static size_t recv_size(lua_State *L, int idx, lsock *k) {
  size_t n = lua_isnoneornil(L, idx) ? DGRAM_DEFAULT : (size_t)lipc_checkrange(L, idx, 1, INT_MAX);
  size_t cap = k->type == SOCK_STREAM ? STREAM_MAX : DGRAM_MAX;
  return n > cap ? cap : n;
}

/* Reads of at most this many bytes use a buffer on the C stack. */
#define STACK_RECV 8192

/* Scratch space for a receive of n bytes: the stack buffer for small ones,
 * else the stream's read-ahead buffer (empty at this point: its bytes are
 * always served first), grown as needed.  NULL when out of memory. */
static char *recv_space(lsock *k, size_t n, char *stackbuf) {
  if (n <= STACK_RECV) return stackbuf;
  lipc_stream *s = &k->s;
  s->off = 0;
  if (s->cap < n) {
    char *nb = realloc(s->buf, n);
    if (nb == NULL) return NULL;
    s->buf = nb;
    s->cap = n;
  }
  return s->buf;
}

/* The try of recv (w->acc[1] = 0) and recvfrom (1) of at most w->acc[0]
 * bytes: data (nil at the end of a stream or of a seqpacket connection),
 * the sender's URL for recvfrom (nil when unnamed or for bytes read ahead
 * by lines()), then true when a message was longer than n (truncated). */
static int try_recv(lua_State *L, lipc_wait *w) {
  lsock *k = w->p;
  size_t n = (size_t)w->acc[0];
  int with_from = (int)w->acc[1];
  if (k->s.len > 0) {  /* bytes read ahead by lines() come first */
    size_t take = n < k->s.len ? n : k->s.len;
    lua_pushlstring(L, k->s.buf + k->s.off, take);
    k->s.off += take;
    k->s.len -= take;
    return 1;
  }
  char stackbuf[STACK_RECV];
  char *p = recv_space(k, n, stackbuf);
  if (p == NULL) return luaL_error(L, "not enough memory");
  int flags = dontwait(w);
  struct sockaddr_storage from;
  socklen_t fl = 0;
  int trunc = 0;
  ssize_t r;
  if (!with_from) {
    /* message sockets: MSG_TRUNC makes recv return the real length */
    r = recv(k->s.h.fd, p, n, flags | (k->type == SOCK_STREAM ? 0 : MSG_TRUNC));
    if (r > (ssize_t)n) { trunc = 1; r = (ssize_t)n; }
  } else {
    memset(&from, 0, sizeof from);
    struct iovec iov = {p, n};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_name = &from;
    m.msg_namelen = sizeof from;
    r = recvmsg(k->s.h.fd, &m, flags);
    if (r >= 0) {
      fl = m.msg_namelen;
      trunc = (m.msg_flags & MSG_TRUNC) != 0;
    }
  }
  /* a datagram socket shut down for reading polls readable and says
   * EAGAIN: the wait path backs off */
  if (r < 0) return sock_failed(L, w, POLLIN);
  if (r == 0 && k->type != SOCK_DGRAM && k->type != SOCK_RAW) {
    lua_pushnil(L);  /* end of stream */
    return 1;
  }
  lua_pushlstring(L, p, (size_t)r);
  int nret = 1;
  if (with_from) {
    if (fl == 0) lua_pushnil(L);
    else push_sockaddr(L, k->scheme, &from, fl, NULL, 0);
    nret++;
  }
  if (trunc) { lua_pushboolean(L, 1); nret++; }
  return nret;
}

/* Receive for recv (with_from = 0) and recvfrom (1). */
static int recv_common(lua_State *L, int with_from) {
  lsock *k = checksock(L, 1);
  size_t n = recv_size(L, 2, k);
  lipc_wait w;
  sock_call(&w, with_from ? "recvfrom" : "recv");
  w.acc[0] = (lua_Integer)n;
  w.acc[1] = with_from;
  return lipc_stream_run(L, &w, &k->s, 3, try_recv);
}

/* s:recv(n, timeout): up to n bytes (stream) or one message, plus true
 * when the message was truncated. */
static int lsocket_recv(lua_State *L) { return recv_common(L, 0); }

/* s:recvfrom(n, timeout): data, from, and true when truncated. */
static int lsocket_recvfrom(lua_State *L) { return recv_common(L, 1); }

/* ---- many messages per system call: sendmmsg / recvmmsg ------------------ */

/* Messages per sendmmsg/recvmmsg call (their headers live on the C stack). */
#define MMSG_CHUNK 64
/* Largest scratch buffer of one recvmany (max messages * size bytes). */
#define MMSG_SPACE (16 * 1024 * 1024)

/* The end of a sendmany that did not finish (its w->stop): the count sent
 * so far followed by the reason (message, errno), or the usual triple when
 * nothing was sent. */
static int sendmany_stop(lua_State *L, lipc_wait *w, int err) {
  int n = lipc_fail(L, err, w->call, sock_name(w->p));
  if (w->acc[0] > 0 && n == 3) {
    lua_pushinteger(L, w->acc[0]);
    lua_replace(L, -4);       /* the nil in front of message, errno */
  }
  return n;
}

/* The try of sendmany: the list of strings is argument 2; w->acc[0]
 * messages of the w->acc[1] are sent.  Up to MMSG_CHUNK per sendmmsg. */
static int try_sendmany(lua_State *L, lipc_wait *w) {
  lsock *k = w->p;
  int flags = MSG_NOSIGNAL | dontwait(w);
  struct mmsghdr mm[MMSG_CHUNK];
  struct iovec iov[MMSG_CHUNK];
  while (w->acc[0] < w->acc[1]) {
    lua_Integer first = w->acc[0];
    int n = 0;
    for (; n < MMSG_CHUNK && first + n < w->acc[1]; n++) {
      size_t len;
      /* the list anchors the string: its bytes stay put after the pop */
      if (lua_rawgeti(L, 2, first + n + 1) != LUA_TSTRING)
        return luaL_error(L, "sendmany: the list changed while it was being sent");
      const char *p = lua_tolstring(L, -1, &len);
      lua_pop(L, 1);
      iov[n].iov_base = (void *)p;
      iov[n].iov_len = len;
      memset(&mm[n], 0, sizeof mm[n]);
      mm[n].msg_hdr.msg_iov = &iov[n];
      mm[n].msg_hdr.msg_iovlen = 1;
    }
    int r = sendmmsg(k->s.h.fd, mm, (unsigned)n, flags);
    if (r < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) return sock_failed(L, w, POLLOUT);
      return sendmany_stop(L, w, err);
    }
    w->acc[0] += r;
    w->tries = 0;  /* progress: the next EAGAIN waits without a backoff */
    /* a blocking sendmmsg stops short only for a signal: let lipc_run see
     * Ctrl-C before the rest is sent */
    if (r < n && !(flags & MSG_DONTWAIT)) return LIPC_EINTR;
  }
  lua_pushinteger(L, w->acc[0]);
  return 1;
}

/* s:sendmany(list [, timeout]): send list[1], list[2]... (strings) as
 * separate messages with as few sendmmsg calls as possible (a datagram or
 * seqpacket socket).  The count sent (#list); when it stops early after
 * sending some: that count, message, errno; nothing sent: nil, message,
 * errno (a timeout: "timeout", ETIMEDOUT). */
static int lsocket_sendmany(lua_State *L) {
  lsock *k = checksock(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (k->type == SOCK_STREAM) return luaL_argerror(L, 1, "a datagram or seqpacket socket expected");
  lua_Integer n = (lua_Integer)lua_rawlen(L, 2);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, 2, i) != LUA_TSTRING)
      return luaL_argerror(L, 2, lua_pushfstring(L, "item %I: string expected, got %s", i,
                                                 luaL_typename(L, -1)));
    lua_pop(L, 1);
  }
  lipc_wait w;
  sock_call(&w, "sendmmsg");
  w.stop = sendmany_stop;
  w.acc[1] = n;
  lua_settop(L, 3);
  return lipc_stream_run(L, &w, &k->s, 3, try_sendmany);
}

/* The try of recvmany: up to w->acc[0] messages of at most w->acc[1]
 * bytes each, in one recvmmsg (MSG_WAITFORONE: it waits for the first
 * only).  A list of strings, or nil at the end of a seqpacket
 * connection. */
static int try_recvmany(lua_State *L, lipc_wait *w) {
  lsock *k = w->p;
  int max = (int)w->acc[0];
  size_t size = (size_t)w->acc[1];
  if (k->s.len > 0) {  /* bytes read ahead by lines() come first, as one message */
    size_t take = size < k->s.len ? size : k->s.len;
    lua_createtable(L, 1, 0);
    lua_pushlstring(L, k->s.buf + k->s.off, take);
    lua_rawseti(L, -2, 1);
    k->s.off += take;
    k->s.len -= take;
    return 1;
  }
  char stackbuf[STACK_RECV];
  char *p = recv_space(k, (size_t)max * size, stackbuf);
  if (p == NULL) return luaL_error(L, "not enough memory");
  struct mmsghdr mm[MMSG_CHUNK];
  struct iovec iov[MMSG_CHUNK];
  for (int i = 0; i < max; i++) {
    iov[i].iov_base = p + (size_t)i * size;
    iov[i].iov_len = size;
    memset(&mm[i], 0, sizeof mm[i]);
    mm[i].msg_hdr.msg_iov = &iov[i];
    mm[i].msg_hdr.msg_iovlen = 1;
  }
  int flags = dontwait(w);
  int r = recvmmsg(k->s.h.fd, mm, (unsigned)max, flags ? flags : MSG_WAITFORONE, NULL);
  if (r < 0) return sock_failed(L, w, POLLIN);
  int n = r;
  if (k->type == SOCK_SEQPACKET) {
    /* an empty message and the end of the connection look alike (the end
     * fills every later slot): keep every message up to the last one with
     * bytes, and at most one "" after it; all empty: the end (nil) */
    int last = -1;
    for (int i = 0; i < r; i++) if (mm[i].msg_len > 0) last = i;
    if (last < 0) {
      lua_pushnil(L);
      return 1;
    }
    n = last + 1 < r ? last + 2 : r;
  } else if (r == 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushlstring(L, (const char *)iov[i].iov_base, mm[i].msg_len);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* s:recvmany([max [, size [, timeout]]]): the messages that are ready, at
 * least one (waiting for it as recv does), at most max (default and
 * largest 64) in one recvmmsg call, each cut to size bytes (default
 * 65536); a list of strings, nil at the end of a seqpacket connection.
 * A datagram or seqpacket socket. */
static int lsocket_recvmany(lua_State *L) {
  lsock *k = checksock(L, 1);
  if (k->type == SOCK_STREAM) return luaL_argerror(L, 1, "a datagram or seqpacket socket expected");
  lua_Integer max = lua_isnoneornil(L, 2) ? MMSG_CHUNK : lipc_checkrange(L, 2, 1, INT_MAX);
  size_t size = recv_size(L, 3, k);
  if (max > MMSG_CHUNK) max = MMSG_CHUNK;
  if ((size_t)max * size > MMSG_SPACE) max = (lua_Integer)(MMSG_SPACE / size > 0 ? MMSG_SPACE / size : 1);
  lipc_wait w;
  sock_call(&w, "recvmmsg");
  w.acc[0] = max;
  w.acc[1] = (lua_Integer)size;
  return lipc_stream_run(L, &w, &k->s, 4, try_recvmany);
}

/* s:shutdown(how): "r", "w" or "rw". */
static int lsocket_shutdown(lua_State *L) {
  static const char *const hows[] = {"r", "w", "rw", NULL};
  static const int hv[] = {SHUT_RD, SHUT_WR, SHUT_RDWR};
  lsock *k = checksock(L, 1);
  int how = hv[luaL_checkoption(L, 2, "rw", hows)];
  if (shutdown(k->s.h.fd, how) != 0) return lipc_error(L, errno, "shutdown", sock_name(k));
  lua_pushboolean(L, 1);
  return 1;
}

/* Push the local (peer = 0) or the peer's address of the socket at 1 as a
 * URL (nil when unnamed). */
static int push_name(lua_State *L, int peer) {
  lsock *k = checksock(L, 1);
  struct sockaddr_storage sa;
  socklen_t sl = sizeof sa;
  memset(&sa, 0, sizeof sa);
  int rc = peer ? getpeername(k->s.h.fd, (struct sockaddr *)&sa, &sl)
                : getsockname(k->s.h.fd, (struct sockaddr *)&sa, &sl);
  if (rc != 0) return lipc_error(L, errno, peer ? "getpeername" : "getsockname", sock_name(k));
  push_sockaddr(L, k->scheme, &sa, sl, NULL, 0);
  return 1;
}

/* s:address(): the local address as a URL (nil when unnamed). */
static int lsocket_address(lua_State *L) { return push_name(L, 0); }

/* s:peer(): the peer's address as a URL (nil when unnamed). */
static int lsocket_peer(lua_State *L) { return push_name(L, 1); }

/* Socket options by name. */
enum { OPT_BOOL, OPT_INT, OPT_LINGER };
static const struct sockopt {
  const char *name;
  int level, opt, kind;
} OPTS[] = {
  {"nodelay", IPPROTO_TCP, TCP_NODELAY, OPT_BOOL},
  {"reuseaddr", SOL_SOCKET, SO_REUSEADDR, OPT_BOOL},
  {"reuseport", SOL_SOCKET, SO_REUSEPORT, OPT_BOOL},
  {"keepalive", SOL_SOCKET, SO_KEEPALIVE, OPT_BOOL},
  {"broadcast", SOL_SOCKET, SO_BROADCAST, OPT_BOOL},
  {"rcvbuf", SOL_SOCKET, SO_RCVBUF, OPT_INT},
  {"sndbuf", SOL_SOCKET, SO_SNDBUF, OPT_INT},
  {"linger", SOL_SOCKET, SO_LINGER, OPT_LINGER},
  {NULL, 0, 0, 0}
};

/* The option named at idx; raises for an unknown name. */
static const struct sockopt *checkopt(lua_State *L, int idx) {
  const char *name = luaL_checkstring(L, idx);
  for (const struct sockopt *o = OPTS; o->name; o++)
    if (strcmp(o->name, name) == 0) return o;
  luaL_argerror(L, idx, lua_pushfstring(L, "unknown socket option '%s' (nodelay, reuseaddr, "
                                           "reuseport, keepalive, broadcast, rcvbuf, sndbuf, linger)", name));
  return NULL;
}

/* s:setoption(name, value): true. linger takes seconds or false. */
static int lsocket_setoption(lua_State *L) {
  lsock *k = checksock(L, 1);
  const struct sockopt *o = checkopt(L, 2);
  int rc;
  if (o->kind == OPT_BOOL) {
    luaL_checktype(L, 3, LUA_TBOOLEAN);
    rc = setbool(k->s.h.fd, o->level, o->opt, lua_toboolean(L, 3));
  } else if (o->kind == OPT_INT) {
    int v = (int)lipc_checkrange(L, 3, 0, INT_MAX);
    rc = setsockopt(k->s.h.fd, o->level, o->opt, &v, sizeof v);
  } else {
    struct linger lg = {0, 0};
    if (lua_type(L, 3) == LUA_TBOOLEAN) {
      luaL_argcheck(L, !lua_toboolean(L, 3), 3, "linger takes seconds or false");
    } else {
      lg.l_onoff = 1;
      lg.l_linger = (int)lipc_checkrange(L, 3, 0, INT_MAX);
    }
    rc = setsockopt(k->s.h.fd, o->level, o->opt, &lg, sizeof lg);
  }
  if (rc != 0) return lipc_error(L, errno, "setsockopt", o->name);
  lua_pushboolean(L, 1);
  return 1;
}

/* s:getoption(name): the current value (boolean, integer, or seconds/false). */
static int lsocket_getoption(lua_State *L) {
  lsock *k = checksock(L, 1);
  const struct sockopt *o = checkopt(L, 2);
  if (o->kind == OPT_LINGER) {
    struct linger lg;
    socklen_t l = sizeof lg;
    if (getsockopt(k->s.h.fd, o->level, o->opt, &lg, &l) != 0) return lipc_error(L, errno, "getsockopt", o->name);
    if (lg.l_onoff) lua_pushinteger(L, lg.l_linger);
    else lua_pushboolean(L, 0);
    return 1;
  }
  int v = 0;
  socklen_t l = sizeof v;
  if (getsockopt(k->s.h.fd, o->level, o->opt, &v, &l) != 0) return lipc_error(L, errno, "getsockopt", o->name);
  if (o->kind == OPT_BOOL) lua_pushboolean(L, v != 0);
  else lua_pushinteger(L, v);
  return 1;
}

/* s:peercred(): { pid=, uid=, gid= } of the peer (SO_PEERCRED). */
static int lsocket_peercred(lua_State *L) {
  lsock *k = checksock(L, 1);
  struct ucred cr;
  socklen_t l = sizeof cr;
  if (getsockopt(k->s.h.fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) != 0)
    return lipc_error(L, errno, "getsockopt SO_PEERCRED", sock_name(k));
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, cr.pid);
  lua_setfield(L, -2, "pid");
  lua_pushinteger(L, cr.uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, cr.gid);
  lua_setfield(L, -2, "gid");
  return 1;
}

/* The descriptors to send: one object or number at idx, or a list of
 * them (1 to LIPC_MAXFDS) into fds; returns how many. */
static int sendfd_list(lua_State *L, int idx, int *fds) {
  if (lua_type(L, idx) != LUA_TTABLE) {
    fds[0] = lipc_checkfd(L, idx);
    return 1;
  }
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  luaL_argcheck(L, n >= 1 && n <= LIPC_MAXFDS, idx, "a list of 1 to 253 descriptors expected");
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    lipc_handle *h = lipc_toany(L, -1);
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (h != NULL) {
      if (!h->open) lipc_closed_error(L, h->cls);
      if (h->fd < 0) luaL_argerror(L, idx, lua_pushfstring(L, "item %I: %s has no descriptor", i, h->cls->name));
      fds[i - 1] = h->fd;
    } else if (lua_type(L, -1) == LUA_TNUMBER && isint && v >= 0 && v <= INT_MAX) {
      fds[i - 1] = (int)v;
    } else {
      luaL_argerror(L, idx, lua_pushfstring(L, "item %I: lipc object or descriptor expected, got %s", i,
                                            luaL_typename(L, -1)));
    }
    lua_pop(L, 1);
  }
  return (int)n;
}

/* Put the SCM_RIGHTS control message for fds[0..n) into m (buf, its room). */
static void rights_build(struct msghdr *m, char *buf, size_t room, const int *fds, int n) {
  memset(buf, 0, room);
  m->msg_control = buf;
  m->msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
  struct cmsghdr *c = CMSG_FIRSTHDR(m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
  memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
}

/* The try of sendfd: the descriptors are argument 2 (read again at each
 * try: they were checked before the first), the data argument 3 (absent:
 * one NUL byte). */
static int try_sendfd(lua_State *L, lipc_wait *w) {
  lsock *k = w->p;
  int fds[LIPC_MAXFDS];
  int nfd = sendfd_list(L, 2, fds);
  size_t len = 1;
  const char *data = lua_isnoneornil(L, 3) ? "" : lua_tolstring(L, 3, &len);  /* "" + its NUL: one byte */
  union { char buf[CMSG_SPACE(sizeof(int) * LIPC_MAXFDS)]; struct cmsghdr align; } u;
  struct iovec iov = {(void *)data, len};
  struct msghdr m;
  memset(&m, 0, sizeof m);
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  rights_build(&m, u.buf, sizeof u.buf, fds, nfd);
  ssize_t n = sendmsg(k->s.h.fd, &m, MSG_NOSIGNAL | dontwait(w));
  if (n < 0) return sock_failed(L, w, POLLOUT);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

/* s:sendfd(obj_or_fd | { objs_or_fds }, data, timeout): pass descriptors
 * (SCM_RIGHTS, all in one message) with data (default one byte).  Returns
 * the bytes of data sent. */
static int lsocket_sendfd(lua_State *L) {
  lsock *k = checksock(L, 1);
  int fds[LIPC_MAXFDS];
  (void)sendfd_list(L, 2, fds);
  size_t len = 1;
  if (!lua_isnoneornil(L, 3)) luaL_checklstring(L, 3, &len);
  luaL_argcheck(L, len > 0, 3, "data must not be empty (it carries the descriptor)");
  lipc_wait w;
  sock_call(&w, "sendmsg");
  return lipc_stream_run(L, &w, &k->s, 4, try_sendfd);
}

/* Push the list of typed objects for the count descriptors in the box. */
static void push_fdlist(lua_State *L, int *slots, int count) {
  lua_createtable(L, count, 0);
  for (int i = 0; i < count; i++) {
    lipc_fdbox_push(L, slots, i);
    lua_rawseti(L, -2, i + 1);
  }
}

/* The try of recvfd (w->acc[1] = 0) and recvfds (1): the fd box waits at
 * 3 (made before recvmsg: if anything raises later, GC closes the
 * descriptors). */
static int try_recvfd(lua_State *L, lipc_wait *w) {
  lsock *k = w->p;
  int many = (int)w->acc[1];
  int *slots = lua_touserdata(L, 3);
  char p[4096];
  union { char buf[CMSG_SPACE(sizeof(int) * LIPC_MAXFDS)]; struct cmsghdr align; } u;
  struct iovec iov = {p, sizeof p};
  struct msghdr m;
  memset(&m, 0, sizeof m);
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = u.buf;
  m.msg_controllen = sizeof u.buf;
  ssize_t n = recvmsg(k->s.h.fd, &m, MSG_CMSG_CLOEXEC | dontwait(w));
  if (n < 0) return sock_failed(L, w, POLLIN);
  int ctrunc = (m.msg_flags & MSG_CTRUNC) != 0;
  int trunc = k->type != SOCK_STREAM && (m.msg_flags & MSG_TRUNC) != 0;
  int count = lipc_fdbox_fill(slots, &m);
  if (count > LIPC_MAXFDS) { ctrunc = 1; count = LIPC_MAXFDS; }
  if (count == 0 && !ctrunc && n == 0 && k->type != SOCK_DGRAM) {
    lua_pushnil(L);  /* end of stream (stream, seqpacket) */
    return 1;
  }
  /* never drop bytes: from here on the data is returned with every result */
  if (ctrunc) {
    lipc_fdbox_clear(slots);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: control data truncated, the descriptors that arrived were closed",
                    many ? "recvfds" : "recvfd");
    lua_pushinteger(L, EMSGSIZE);
    lua_pushlstring(L, p, (size_t)n);
    return 4;
  }
  if (many) {
    push_fdlist(L, slots, count);
  } else if (count > 1) {
    /* several: none is closed, all come fifth, typed */
    lua_pushnil(L);
    lua_pushfstring(L, "recvfd: message carried %d descriptors (one expected; see recvfds)", count);
    lua_pushinteger(L, EBADMSG);
    lua_pushlstring(L, p, (size_t)n);
    push_fdlist(L, slots, count);
    return 5;
  } else if (count == 1) {
    lipc_fdbox_push(L, slots, 0);
  } else {
    lua_pushboolean(L, 0);  /* data without a descriptor: false, data */
  }
  lua_pushlstring(L, p, (size_t)n);
  if (trunc) { lua_pushboolean(L, 1); return 3; }  /* the rest of the message is gone */
  return 2;
}

/* recvfd (many = 0) and recvfds (many = 1). */
static int recvfd_common(lua_State *L, int many) {
  lsock *k = checksock(L, 1);
  lipc_wait w;
  sock_call(&w, "recvmsg");
  w.acc[1] = many;
  lua_settop(L, 2);
  (void)lipc_fdbox_new(L);  /* at 3 */
  return lipc_stream_run(L, &w, &k->s, 2, try_recvfd);
}

/* s:recvfd(timeout): obj, data - the descriptor passed by the peer, typed
 * as ipc.fd types it, and the data that came with it; nil at end of stream. */
static int lsocket_recvfd(lua_State *L) { return recvfd_common(L, 0); }

/* s:recvfds(timeout): list, data - every descriptor of the message, typed. */
static int lsocket_recvfds(lua_State *L) { return recvfd_common(L, 1); }

static const luaL_Reg sock_methods[] = {
  {"accept", lsocket_accept},
  {"connect", lsocket_mconnect},
  {"send", lsocket_send},
  {"recv", lsocket_recv},
  {"sendto", lsocket_sendto},
  {"recvfrom", lsocket_recvfrom},
  {"sendmany", lsocket_sendmany},
  {"recvmany", lsocket_recvmany},
  {"shutdown", lsocket_shutdown},
  {"address", lsocket_address},
  {"peer", lsocket_peer},
  {"setoption", lsocket_setoption},
  {"getoption", lsocket_getoption},
  {"peercred", lsocket_peercred},
  {"sendfd", lsocket_sendfd},
  {"recvfd", lsocket_recvfd},
  {"recvfds", lsocket_recvfds},
  {"type", lsocket_type},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"listen", lsocket_listen},
  {"connect", lsocket_connect},
  {"socketpair", lsocket_socketpair},
  {NULL, NULL}
};

/* Register lipc.socket and lipc.fd; ipc.listen/connect/socketpair and ipc.socket.*. */
void lipc_open_socket(lua_State *L) {
  lipc_stream_init();
  lipc_stream_register(L, &sock_class, sock_methods);
  lipc_stream_register(L, &fd_class, NULL);
  luaL_setfuncs(L, funcs, 0);
  lipc_subtable(L, -1, "socket");
  luaL_setfuncs(L, funcs, 0);
  lua_pushcfunction(L, lsocket_raw);
  lua_setfield(L, -2, "raw");
  lua_pop(L, 1);
}
