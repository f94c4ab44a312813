/*
 * codec.c - ipc.encode / ipc.decode: Lua values to a compact, versioned
 * binary string and back (format: doc/codec.md).
 *
 * Encoding writes into a growing malloc'd buffer owned by a userdata box
 * kept as an upvalue, so a raised error never leaks it (the box is reused
 * by the next call and freed by __gc).  No Lua code can run while the
 * buffer is being filled (raw access only, and the API calls used on the
 * way create no Lua object, so no GC step runs a finalizer), so the shared
 * buffer is never re-entered.
 * Decoding never reads past its input, never raises for bad bytes (nil,
 * message instead) and never preallocates more table slots than the input
 * could describe.
 *
 * Speed: the encoder walks each table once with lua_next, taking the
 * leading run of keys 1, 2, 3... as the array part (lua_rawgeti fills in
 * what lua_next gives out of order), uses stack-relative indices only and
 * checks the Lua stack once per 8 levels.  The decoder creates every table with
 * its exact array and hash sizes (small arrays wait on the Lua stack until
 * the pair count that follows them is known), so nothing is rehashed.
 */
#include "core.h"
#include "codec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CODEC_MAGIC 0xB1          /* 0xB_: lipc codec, _1: version 1 */
#define CODEC_MAXDEPTH 200        /* nesting limit of tables */
#define DEC_STACK_ARRAY 64        /* arrays up to this size wait on the Lua stack */

enum {
  T_NIL = 0x00, T_FALSE = 0x01, T_TRUE = 0x02, T_INT = 0x03, T_FLOAT = 0x04,
  T_STR = 0x05, T_TABLE = 0x06,
  T_SHORTSTR = 0x40,              /* 0x40..0x7F: string of length 0..63 */
  T_SMALLINT = 0x80               /* 0x80..0xFF: integer 0..127 */
};

#if defined(__GNUC__)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define NOINLINE __attribute__((noinline))
#else
#define LIKELY(x) (x)
#define UNLIKELY(x) (x)
#define NOINLINE
#endif


/* The reusable output buffer (a userdata upvalue of ipc.encode). */
typedef lipc_buf cbuf;

/* Keep buffers larger than this from one call to the next? No: free them. */
#define CBUF_KEEP (1u << 20)

/* __gc of the buffer box. */
static int cbuf_gc(lua_State *L) {
  cbuf *b = lua_touserdata(L, 1);
  free(b->p);
  b->p = NULL;
  b->cap = b->len = 0;
  return 0;
}

/* Encoder state: the write cursor, the ancestors (cycle check) and the path. */
typedef struct enc {
  lua_State *L;
  cbuf *b;
  char *w, *lim;                         /* next byte to write, end of b->p */
  int depth;
  const void *anc[CODEC_MAXDEPTH + 1];   /* tables on the current path */
  int keyidx[CODEC_MAXDEPTH + 1];        /* stack index of the key, or 0 */
  lua_Integer arridx[CODEC_MAXDEPTH + 1];/* array index when keyidx == 0 */
} enc;

/* Raise an encode error naming what and the path to it. */
static NOINLINE int enc_error(enc *e, const char *what) {
  lua_State *L = e->L;
  luaL_checkstack(L, 8, "ipc.encode: nesting too deep");
  luaL_Buffer pb;
  luaL_buffinit(L, &pb);
  luaL_addstring(&pb, "value");
  for (int i = 1; i <= e->depth; i++) {
    if (i > 12 && i < e->depth - 3) {
      if (i == 13) luaL_addstring(&pb, "...");
      continue;
    }
    char tmp[64];
    int k = e->keyidx[i];
    if (k == 0) {
      snprintf(tmp, sizeof tmp, "[%lld]", (long long)e->arridx[i]);
      luaL_addstring(&pb, tmp);
    } else if (lua_type(L, k) == LUA_TSTRING) {
      size_t n;
      const char *s = lua_tolstring(L, k, &n);
      int ident = n > 0 && n <= 40 && !(s[0] >= '0' && s[0] <= '9');
      for (size_t j = 0; ident && j < n; j++)
        ident = (s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z') ||
                (s[j] >= '0' && s[j] <= '9') || s[j] == '_';
      if (ident) {
        luaL_addchar(&pb, '.');
        luaL_addlstring(&pb, s, n);
      } else {
        luaL_addstring(&pb, "[<string>]");
      }
    } else if (lua_type(L, k) == LUA_TNUMBER) {
      if (lua_isinteger(L, k)) snprintf(tmp, sizeof tmp, "[%lld]", (long long)lua_tointeger(L, k));
      else snprintf(tmp, sizeof tmp, "[%.17g]", lua_tonumber(L, k));
      luaL_addstring(&pb, tmp);
    } else {
      luaL_addstring(&pb, lua_toboolean(L, k) ? "[true]" : "[false]");
    }
  }
  luaL_pushresult(&pb);
  const char *path = lua_tostring(L, -1);
  return luaL_error(L, "ipc.encode: %s at %s", what, path);
}

/* Grow the buffer so that n more bytes fit after the cursor; raises on out of memory. */
static NOINLINE void enc_grow(enc *e, size_t n) {
  cbuf *b = e->b;
  size_t len = (size_t)(e->w - b->p);
  size_t cap = b->cap ? b->cap : 256;
  while (cap - len < n) {
    if (cap > ((size_t)-1) / 2) luaL_error(e->L, "ipc.encode: value too large");
    cap *= 2;
  }
  char *p = realloc(b->p, cap);
  if (p == NULL) luaL_error(e->L, "ipc.encode: not enough memory");
  b->p = p;
  b->cap = cap;
  e->w = p + len;
  e->lim = p + cap;
}

/* Make room for n more bytes. */
#define ENC_ROOM(e, n) \
  do { if (UNLIKELY((size_t)((e)->lim - (e)->w) < (size_t)(n))) enc_grow((e), (size_t)(n)); } while (0)

/* Write v as a LEB128 varint at p; returns the byte count (1..10). */
static inline int put_varint(char *p, uint64_t v) {
  int n = 0;
  while (v >= 0x80) {
    p[n++] = (char)((v & 0x7F) | 0x80);
    v >>= 7;
  }
  p[n++] = (char)v;
  return n;
}

/* Bytes the varint of v takes. */
static inline int varint_len(uint64_t v) {
  int n = 1;
  while (v >= 0x80) { v >>= 7; n++; }
  return n;
}

/* Append a string value (tag, length, bytes). */
static inline void enc_string(enc *e, const char *s, size_t n) {
  ENC_ROOM(e, n + 11);
  char *p = e->w;
  if (LIKELY(n < 64)) {
    *p++ = (char)(T_SHORTSTR + n);
    if (n <= 16) {                /* short keys and words: no call to memcpy */
      for (size_t i = 0; i < n; i++) p[i] = s[i];
      e->w = p + n;
      return;
    }
  } else {
    *p++ = T_STR;
    p += put_varint(p, n);
  }
  memcpy(p, s, n);
  e->w = p + n;
}

/* Append an integer (room for 11 bytes already made). */
static inline void put_int(enc *e, lua_Integer i) {
  if ((lua_Unsigned)i < 128) {
    *e->w++ = (char)(T_SMALLINT + i);
  } else {
    uint64_t u = (uint64_t)i;
    uint64_t z = (u << 1) ^ (uint64_t)-(int64_t)(u >> 63);  /* zigzag */
    *e->w++ = T_INT;
    e->w += put_varint(e->w, z);
  }
}

/* Append a float (room for 9 bytes already made). */
static inline void put_float(enc *e, lua_Number x) {
  double d = (double)x;
  uint64_t u;
  memcpy(&u, &d, 8);
  char *p = e->w;
  p[0] = T_FLOAT;
  for (int j = 0; j < 8; j++) p[1 + j] = (char)(u >> (8 * j));  /* little-endian */
  e->w = p + 9;
}

/* Store count n in the width-byte slot at offset pos, moving what follows when n needs another width. */
static inline void put_count(enc *e, size_t pos, int width, uint64_t n) {
  if (LIKELY(n < 0x80 && width == 1)) {
    e->b->p[pos] = (char)n;
    return;
  }
  int k = varint_len(n);
  if (k != width) {
    if (k > width) ENC_ROOM(e, (size_t)(k - width));
    char *from = e->b->p + pos + width;
    memmove(e->b->p + pos + k, from, (size_t)(e->w - from));
    e->w += k - width;
  }
  put_varint(e->b->p + pos, n);
}

static NOINLINE void enc_table(enc *e, int abs);

/* Raise "cannot encode a <type>" naming the path to the value on the top. */
static NOINLINE void enc_badvalue(enc *e) {
  lua_State *L = e->L;
  luaL_checkstack(L, 4, "ipc.encode: nesting too deep");
  lua_pushfstring(L, "cannot encode a %s", luaL_typename(L, -1));
  enc_error(e, lua_tostring(L, -1));
}

/* Append the value on the top of the stack (absolute index abs); tables go to
 * enc_table.  Returns 1 when it was an integer.  Relative indices only: the
 * API resolves them with one load less. */
static inline int enc_top(enc *e, int abs) {
  lua_State *L = e->L;
  int t = lua_type(L, -1);
  if (t == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    enc_string(e, s, n);
  } else if (t == LUA_TNUMBER) {
    ENC_ROOM(e, 11);
    if (lua_isinteger(L, -1)) {
      put_int(e, lua_tointegerx(L, -1, NULL));
      return 1;
    }
    put_float(e, lua_tonumberx(L, -1, NULL));
  } else if (t == LUA_TTABLE) {
    enc_table(e, abs);
  } else if (t == LUA_TBOOLEAN) {
    ENC_ROOM(e, 1);
    *e->w++ = lua_toboolean(L, -1) ? T_TRUE : T_FALSE;
  } else if (t == LUA_TNIL) {
    ENC_ROOM(e, 1);
    *e->w++ = T_NIL;
  } else {
    enc_badvalue(e);
  }
  return 0;
}

/* Append an array element on the top: an integer straight away when the
 * previous element was one (*intrun), saving the lua_type call. */
static inline void enc_elem(enc *e, int abs, int *intrun) {
  lua_State *L = e->L;
  if (*intrun && lua_isinteger(L, -1)) {
    ENC_ROOM(e, 11);
    put_int(e, lua_tointegerx(L, -1, NULL));
    return;
  }
  *intrun = enc_top(e, abs);
}

/* Raise "cannot encode a <type> key" (key at -2) naming the path to the table. */
static NOINLINE void enc_badkey(enc *e) {
  lua_State *L = e->L;
  int d = e->depth;
  luaL_checkstack(L, 4, "ipc.encode: nesting too deep");
  lua_pushfstring(L, "cannot encode a %s key", luaL_typename(L, -2));
  e->keyidx[d] = 0;
  e->arridx[d] = 0;
  e->depth--;
  enc_error(e, lua_tostring(L, -1));
}

/* Append the table on the top of the stack (absolute index abs): array part
 * 1..n (no holes), then the other pairs.  While lua_next runs, the table is
 * at -3, the key at -2 (abs + 1) and the value at -1 (abs + 2). */
static NOINLINE void enc_table(enc *e, int abs) {
  lua_State *L = e->L;
  const void *me = lua_topointer(L, -1);
  int d = e->depth;
  if (UNLIKELY(d >= CODEC_MAXDEPTH)) {
    luaL_checkstack(L, 4, "ipc.encode: nesting too deep");
    lua_pushfstring(L, "tables nested deeper than %d levels", CODEC_MAXDEPTH);
    enc_error(e, lua_tostring(L, -1));
  }
  for (int i = 1; i <= d; i++)
    if (UNLIKELY(e->anc[i] == me)) enc_error(e, "cycle (a table contains itself)");
  /* each level holds at most 3 slots (key, value, t[i]): check once per 8 levels */
  if ((d & 7) == 0 && !lua_checkstack(L, 32)) luaL_error(L, "ipc.encode: nesting too deep");
  e->depth = ++d;
  e->anc[d] = me;
  e->keyidx[d] = 0;
  e->arridx[d] = 0;
  /* lua_rawlen is a border: t[n0 + 1] == nil, so the array part has at most n0 values */
  lua_Integer n0 = (lua_Integer)lua_rawlen(L, -1);
  int width = n0 < 0x80 ? 1 : varint_len((uint64_t)n0);
  ENC_ROOM(e, 1 + (size_t)width + 1);
  *e->w++ = T_TABLE;
  size_t aslot = (size_t)(e->w - e->b->p);
  e->w += width;
  lua_pushnil(L);
  int more = lua_next(L, -2);
  lua_Integer n = 0;
  if (n0 > 0) {
    int intrun = 0;
    /* the keys lua_next gives in order 1, 2, 3... (the Lua array part) */
    while (more && n < n0 && lua_isinteger(L, -2) && lua_tointegerx(L, -2, NULL) == n + 1) {
      e->arridx[d] = ++n;
      enc_elem(e, abs + 2, &intrun);
      lua_settop(L, -2);
      more = lua_next(L, -2);
    }
    /* the rest of t[1], t[2]... up to the first nil (if the traversal
     * ended, every key was 1..n and t[n + 1] is nil) */
    if (more) {
      while (n < n0) {
        if (lua_rawgeti(L, -3, n + 1) == LUA_TNIL) { lua_settop(L, -2); break; }
        e->arridx[d] = ++n;
        enc_elem(e, abs + 3, &intrun);
        lua_settop(L, -2);
      }
    }
  }
  put_count(e, aslot, width, (uint64_t)n);
  /* hash part: every other key, from where the traversal stands */
  ENC_ROOM(e, 1);
  size_t hslot = (size_t)(e->w - e->b->p);
  e->w++;
  uint64_t m = 0;
  e->keyidx[d] = abs + 1;
  while (more) {
    ENC_ROOM(e, 11);
    int kt = lua_type(L, -2);
    if (LIKELY(kt == LUA_TSTRING)) {
      size_t kl;
      const char *ks = lua_tolstring(L, -2, &kl);
      enc_string(e, ks, kl);
    } else if (kt == LUA_TNUMBER) {
      if (lua_isinteger(L, -2)) {
        lua_Integer k = lua_tointegerx(L, -2, NULL);
        if (k >= 1 && k <= n) goto next;     /* in the array part */
        put_int(e, k);
      } else {
        put_float(e, lua_tonumberx(L, -2, NULL));
      }
    } else if (kt == LUA_TBOOLEAN) {
      *e->w++ = lua_toboolean(L, -2) ? T_TRUE : T_FALSE;
    } else {
      enc_badkey(e);
    }
    enc_top(e, abs + 2);
    m++;
  next:
    lua_settop(L, -2);
    more = lua_next(L, -2);
  }
  put_count(e, hslot, 1, m);
  e->depth--;
}

/* Encode the value at absolute index abs (the top of the stack) into b
 * after its first b->len bytes: the 4-byte big-endian length first when
 * frame.  Returns the new length; b->len is left for the caller to commit,
 * so a raised error leaves b as it was (its bytes past b->len are junk). */
static size_t enc_run(lua_State *L, cbuf *b, int abs, int frame) {
  enc st;   /* ~4 KiB of C stack; nothing in it needs freeing */
  enc *e = &st;
  e->L = L;
  e->b = b;
  e->depth = 0;
  e->w = b->p ? b->p + b->len : NULL;
  e->lim = b->p ? b->p + b->cap : NULL;
  size_t start = b->len;
  ENC_ROOM(e, 16);
  if (frame) e->w += 4;
  *e->w++ = (char)CODEC_MAGIC;
  enc_top(e, abs);
  size_t len = (size_t)(e->w - b->p);
  if (frame) {
    size_t body = len - start - 4;
    if (body > 0xFFFFFFFFu) return (size_t)luaL_error(L, "ipc.encode: value of %I bytes too large for a frame",
                                                      (lua_Integer)body);
    unsigned char *p = (unsigned char *)b->p + start;
    p[0] = (unsigned char)(body >> 24);
    p[1] = (unsigned char)(body >> 16);
    p[2] = (unsigned char)(body >> 8);
    p[3] = (unsigned char)body;
  }
  return len;
}

/* Free a buffer that grew past CBUF_KEEP (after its bytes were taken). */
static void cbuf_trim(cbuf *b) {
  b->len = 0;
  if (b->cap > CBUF_KEEP) {
    free(b->p);
    b->p = NULL;
    b->cap = 0;
  }
}

size_t lipc_encode_to(lua_State *L, int idx, lipc_buf *b) {
  lua_pushvalue(L, idx);               /* the encoder wants the value on the top */
  b->len = 0;
  size_t len = enc_run(L, b, lua_gettop(L), 0);
  lua_pop(L, 1);
  return len;
}

void lipc_buf_trim(lipc_buf *b) {
  cbuf_trim(b);
}

/* ipc.encode(value [, frame]) -> string; frame = true prefixes the 4-byte big-endian length. */
static int lcodec_encode(lua_State *L) {
  int top = lua_gettop(L), frame = 0;
  if (top < 1) return luaL_argerror(L, 1, "value expected");
  if (top > 1) {
    if (!lua_isnil(L, 2)) {
      luaL_checktype(L, 2, LUA_TBOOLEAN);
      frame = lua_toboolean(L, 2);
    }
    lua_settop(L, 1);
  }
  cbuf *b = lua_touserdata(L, lua_upvalueindex(1));
  b->len = 0;
  size_t len = enc_run(L, b, 1, frame);
  lua_pushlstring(L, b->p, len);
  cbuf_trim(b);
  return 1;
}

/* ---- frame buffers: many encoded values, one string ------------------- */

#define FRAMEBUF "lipc.framebuf"

/* A frame buffer: frames (4-byte length + encoding) after an optional
 * head written before the first one. */
static const char framebuf_mark = 0;

typedef struct framebuf {
  cbuf b;                  /* first: cbuf_gc frees it */
  const char *mark;        /* &framebuf_mark: the class check (as core.c's) */
  lua_Integer count;       /* frames buffered */
  double first;            /* CLOCK_MONOTONIC seconds of the first put of the batch */
  size_t headlen;
  char head[8];
} framebuf;

static framebuf *checkfb(lua_State *L) {
  framebuf *f = lua_touserdata(L, 1);
  if (f == NULL || lua_rawlen(L, 1) < sizeof *f || f->mark != &framebuf_mark) luaL_typeerror(L, 1, FRAMEBUF);
  return f;
}

/* ipc.framebuf([head]) -> a frame buffer; head (at most 8 bytes) starts
 * every batch. */
static int lcodec_framebuf(lua_State *L) {
  size_t hl = 0;
  const char *h = luaL_optlstring(L, 1, "", &hl);
  luaL_argcheck(L, hl <= 8, 1, "head of at most 8 bytes expected");
  framebuf *f = lua_newuserdatauv(L, sizeof *f, 0);
  memset(f, 0, sizeof *f);
  f->mark = &framebuf_mark;
  memcpy(f->head, h, hl);
  f->headlen = hl;
  luaL_setmetatable(L, FRAMEBUF);
  return 1;
}

/* Monotonic seconds. */
static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* fb:put(value [, limit [, batch [, delay]]]) -> bytes buffered, the
 * bytes before, and due: true when the buffer holds batch bytes or more,
 * or its first frame was put delay seconds ago or more.  nil, size when
 * the encoding is longer than limit bytes (then nothing is added). */
static int lfb_put(lua_State *L) {
  framebuf *f = checkfb(L);
  luaL_checkany(L, 2);
  lua_Integer limit = luaL_optinteger(L, 3, (lua_Integer)0xFFFFFFFFu);
  luaL_argcheck(L, limit >= 0, 3, "limit must be >= 0");
  lua_Integer batch = luaL_optinteger(L, 4, LUA_MAXINTEGER);
  double delay = luaL_optnumber(L, 5, HUGE_VAL);
  lua_settop(L, 2);
  cbuf *b = &f->b;
  size_t before = f->count ? b->len : 0;
  if (f->count == 0) {             /* a fresh batch: the head first */
    b->len = 0;
    if (f->headlen > 0) {
      if (b->cap < 256) {
        char *p = realloc(b->p, 256);
        if (p == NULL) return luaL_error(L, "ipc.framebuf: not enough memory");
        b->p = p;
        b->cap = 256;
      }
      memcpy(b->p, f->head, f->headlen);
      b->len = f->headlen;
    }
  }
  size_t len = enc_run(L, b, 2, 1);
  size_t size = len - b->len - 4;
  if ((lua_Integer)size > limit) {
    if (f->count == 0) b->len = 0;
    lua_pushnil(L);
    lua_pushinteger(L, (lua_Integer)size);
    return 2;
  }
  b->len = len;
  int due = (lua_Integer)len >= batch;
  if (f->count == 0) f->first = mono_now();      /* one clock read per batch... */
  else if (delay < HUGE_VAL && !due && mono_now() - f->first >= delay) due = 1;   /* ...and per put that asks */
  f->count++;
  lua_pushinteger(L, (lua_Integer)len);
  lua_pushinteger(L, (lua_Integer)before);
  lua_pushboolean(L, due);
  return 3;
}

/* Push bytes i.. of the buffer (argument 2, default 1). */
static void fb_push(lua_State *L, framebuf *f) {
  lua_Integer i = luaL_optinteger(L, 2, 1);
  cbuf *b = &f->b;
  size_t len = f->count ? b->len : 0;
  luaL_argcheck(L, i >= 1 && (size_t)i <= len + 1, 2, "position out of range");
  lua_pushlstring(L, len ? b->p + i - 1 : "", len - (size_t)(i - 1));
}

/* fb:bytes([i]) -> bytes i.. of the buffer (default 1: all of it). */
static int lfb_bytes(lua_State *L) {
  fb_push(L, checkfb(L));
  return 1;
}

/* fb:take([i]) -> as fb:bytes, and empties the buffer. */
static int lfb_take(lua_State *L) {
  framebuf *f = checkfb(L);
  fb_push(L, f);
  f->count = 0;
  cbuf_trim(&f->b);
  return 1;
}

/* fb:unput(len): undo the last put, given the length before it (what
 * fb:len() said); nothing when the buffer is empty. */
static int lfb_unput(lua_State *L) {
  framebuf *f = checkfb(L);
  lua_Integer len = luaL_checkinteger(L, 2);
  if (f->count == 0) return 0;
  luaL_argcheck(L, len >= 0 && (size_t)len < f->b.len, 2, "length out of range");
  f->count--;
  f->b.len = f->count ? (size_t)len : 0;
  return 0;
}

/* fb:len() -> bytes buffered (the head included), fb:count() -> frames. */
static int lfb_len(lua_State *L) {
  framebuf *f = checkfb(L);
  lua_pushinteger(L, f->count ? (lua_Integer)f->b.len : 0);
  return 1;
}

static int lfb_count(lua_State *L) {
  lua_pushinteger(L, checkfb(L)->count);
  return 1;
}

/* fb:clear(): forget what is buffered. */
static int lfb_clear(lua_State *L) {
  framebuf *f = checkfb(L);
  f->count = 0;
  cbuf_trim(&f->b);
  return 0;
}

static int lfb_tostring(lua_State *L) {
  framebuf *f = checkfb(L);
  lua_pushfstring(L, FRAMEBUF "(%I frames, %I bytes)", f->count, (lua_Integer)(f->count ? f->b.len : 0));
  return 1;
}

/* ---- decoding ---------------------------------------------------------- */

typedef struct dec {
  lua_State *L;
  const unsigned char *p, *end;
  size_t budget;          /* table slots the remaining input can justify */
  const char *err;        /* first error, or NULL */
  int depth;
  struct scache *cache;   /* short strings already made in this call, or NULL */
} dec;

/* A cache of the short strings a decodeframes call has made: the same keys
 * and words come back in frame after frame, and pushing a string kept in a
 * table is several times cheaper than lua_pushlstring hashing and interning
 * it again.  Direct-mapped; entry i's string is slot i + 1 of the table at
 * stack index idx, which keeps the bytes that s points to alive. */
#define SCACHE_SIZE 64
#define SCACHE_MAXLEN 40          /* Lua's short strings (LUAI_MAXSHORTLEN) */

struct scache {
  int idx;
  struct { const char *s; size_t n; } e[SCACHE_SIZE];
};

/* Push the short string p[0..n) (0 < n <= SCACHE_MAXLEN) through the cache. */
static inline void push_cached(lua_State *L, struct scache *c, const unsigned char *p, size_t n) {
  unsigned h = ((unsigned)n * 7u + p[0] * 31u + p[n - 1] * 131u + p[n >> 1]) & (SCACHE_SIZE - 1);
  if (c->e[h].n == n && memcmp(c->e[h].s, p, n) == 0) {
    lua_rawgeti(L, c->idx, (lua_Integer)h + 1);
    return;
  }
  c->e[h].s = lua_pushlstring(L, (const char *)p, n);
  c->e[h].n = n;
  lua_pushvalue(L, -1);
  lua_rawseti(L, c->idx, (lua_Integer)h + 1);
}

/* Record an error (the first one wins); returns -1. */
static NOINLINE int dec_fail(dec *d, const char *msg) {
  if (d->err == NULL) d->err = msg;
  return -1;
}

/* Read a varint of 2 bytes or more into *v; -1 on truncation or overflow. */
static NOINLINE int get_varint_slow(dec *d, uint64_t *v) {
  uint64_t r = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (d->p >= d->end) return dec_fail(d, "truncated input");
    unsigned c = *d->p++;
    if (shift == 63 && c > 1) return dec_fail(d, "varint overflow");
    r |= (uint64_t)(c & 0x7F) << shift;
    if (!(c & 0x80)) { *v = r; return 0; }
  }
  return dec_fail(d, "varint overflow");
}

/* Read a varint into *v; -1 on truncation or overflow. */
static inline int get_varint(dec *d, uint64_t *v) {
  if (LIKELY(d->p < d->end && *d->p < 0x80)) {
    *v = *d->p++;
    return 0;
  }
  return get_varint_slow(d, v);
}

static int dec_table(dec *d);

/* Read one value and push it; -1 (nothing reliable pushed) on error. */
static inline int dec_value(dec *d) {
  lua_State *L = d->L;
  if (UNLIKELY(d->p >= d->end)) return dec_fail(d, "truncated input");
  unsigned tag = *d->p++;
  if (tag >= T_SMALLINT) {
    lua_pushinteger(L, (lua_Integer)(tag - T_SMALLINT));
    return 0;
  }
  if (tag >= T_SHORTSTR) {
    size_t n = tag - T_SHORTSTR;
    if (UNLIKELY((size_t)(d->end - d->p) < n)) return dec_fail(d, "truncated string");
    if (d->cache && n > 0 && n <= SCACHE_MAXLEN) push_cached(L, d->cache, d->p, n);
    else lua_pushlstring(L, (const char *)d->p, n);
    d->p += n;
    return 0;
  }
  switch (tag) {
    case T_NIL: lua_pushnil(L); return 0;
    case T_FALSE: lua_pushboolean(L, 0); return 0;
    case T_TRUE: lua_pushboolean(L, 1); return 0;
    case T_INT: {
      uint64_t z;
      if (get_varint(d, &z) < 0) return -1;
      uint64_t u = (z >> 1) ^ (uint64_t)-(int64_t)(z & 1);
      lua_pushinteger(L, (lua_Integer)u);
      return 0;
    }
    case T_FLOAT: {
      if (d->end - d->p < 8) return dec_fail(d, "truncated float");
      uint64_t u = 0;
      for (int j = 0; j < 8; j++) u |= (uint64_t)d->p[j] << (8 * j);
      double x;
      memcpy(&x, &u, 8);
      d->p += 8;
      lua_pushnumber(L, (lua_Number)x);
      return 0;
    }
    case T_STR: {
      uint64_t n;
      if (get_varint(d, &n) < 0) return -1;
      if (n > (uint64_t)(d->end - d->p)) return dec_fail(d, "string length larger than the input");
      lua_pushlstring(L, (const char *)d->p, (size_t)n);
      d->p += n;
      return 0;
    }
    case T_TABLE: return dec_table(d);
    default: return dec_fail(d, "unknown type tag");
  }
}

/* Read the pair count m of a table and check it against the input. */
static inline int dec_paircount(dec *d, uint64_t *m) {
  if (get_varint(d, m) < 0) return -1;
  if (*m > (uint64_t)(d->end - d->p) / 2 || *m > d->budget) return dec_fail(d, "pair count larger than the input");
  d->budget -= (size_t)*m;
  return 0;
}

/* Clamp a slot count for lua_createtable. */
static inline int slots(uint64_t n) {
  return n > INT32_MAX ? INT32_MAX : (int)n;
}

/* Read a table (after its tag) and push it. */
static NOINLINE int dec_table(dec *d) {
  lua_State *L = d->L;
  if (d->depth >= CODEC_MAXDEPTH) return dec_fail(d, "tables nested too deep");
  uint64_t n, m;
  if (get_varint(d, &n) < 0) return -1;
  /* every element takes at least one byte: refuse counts the input cannot hold */
  if (n > (uint64_t)(d->end - d->p) || n > d->budget) return dec_fail(d, "array count larger than the input");
  d->budget -= (size_t)n;
  d->depth++;
  int t;
  if (n <= DEC_STACK_ARRAY) {
    /* the values wait on the stack until m is known: the table is made with its exact sizes */
    if (!lua_checkstack(L, (int)n + 4)) return dec_fail(d, "tables nested too deep");
    for (uint64_t i = 0; i < n; i++)
      if (dec_value(d) < 0) return -1;
    if (dec_paircount(d, &m) < 0) return -1;
    lua_createtable(L, (int)n, slots(m));
    if (n > 0) {
      t = lua_gettop(L) - (int)n;
      lua_rotate(L, t, 1);        /* the table below its values */
      for (int i = (int)n; i >= 1; i--) lua_rawseti(L, t, i);
    } else {
      t = lua_gettop(L);
    }
  } else {
    if (!lua_checkstack(L, 4)) return dec_fail(d, "tables nested too deep");
    lua_createtable(L, slots(n), 0);
    t = lua_gettop(L);
    for (uint64_t i = 1; i <= n; i++) {
      if (dec_value(d) < 0) return -1;
      lua_rawseti(L, t, (lua_Integer)i);
    }
    if (dec_paircount(d, &m) < 0) return -1;
  }
  for (uint64_t i = 0; i < m; i++) {
    if (d->p >= d->end) return dec_fail(d, "truncated input");
    unsigned kt = *d->p;
    if (kt == T_NIL) return dec_fail(d, "nil table key");
    if (kt == T_TABLE) return dec_fail(d, "table used as a table key");
    if (kt == T_FLOAT && d->end - d->p >= 9) {
      uint64_t u = 0;
      for (int j = 0; j < 8; j++) u |= (uint64_t)d->p[1 + j] << (8 * j);
      if ((u & 0x7FF0000000000000u) == 0x7FF0000000000000u && (u & 0x000FFFFFFFFFFFFFu) != 0)
        return dec_fail(d, "NaN table key");
    }
    if (dec_value(d) < 0) return -1;
    if (dec_value(d) < 0) return -1;
    lua_rawset(L, t);
  }
  d->depth--;
  return 0;
}

/* Decode the encoding s[0..len) and push its value; NULL, or the error
 * (nothing reliable pushed) with *at its byte offset. */
static const char *dec_one(lua_State *L, const char *s, size_t len, size_t *at, struct scache *cache) {
  dec d = { L, (const unsigned char *)s, (const unsigned char *)s + len, len, NULL, 0, cache };
  if (len == 0) d.err = "empty input";
  else if ((unsigned char)s[0] != CODEC_MAGIC)
    d.err = ((unsigned char)s[0] & 0xF0) == (CODEC_MAGIC & 0xF0) ? "unsupported codec version"
                                                                   : "not lipc-encoded data (bad magic byte)";
  else {
    d.p++;
    if (dec_value(&d) == 0 && d.p != d.end) d.err = "trailing bytes after the value";
  }
  *at = (size_t)((const char *)d.p - s);
  return d.err;
}

const char *lipc_decode_from(lua_State *L, const char *p, size_t n, size_t *at) {
  int top = lua_gettop(L);
  const char *err = dec_one(L, p, n, at, NULL);
  if (err) lua_settop(L, top);
  return err;
}

/* Read an optional position argument (1-based, lo..hi) as an offset. */
static size_t checkpos(lua_State *L, int arg, lua_Integer lo, lua_Integer hi, size_t dflt) {
  if (lua_isnoneornil(L, arg)) return dflt;
  lua_Integer i = luaL_checkinteger(L, arg);
  if (i < lo || i > hi) luaL_argerror(L, arg, "position out of range");
  return (size_t)i;
}

/* ipc.decode(bytes [, i [, j]]) -> value | nil, message (bytes i..j, default the whole string). */
static int lcodec_decode(lua_State *L) {
  if (lua_type(L, 1) != LUA_TSTRING) return luaL_typeerror(L, 1, "string");
  size_t len;
  const char *s = lua_tolstring(L, 1, &len);
  if (lua_gettop(L) > 1) {
    size_t i = checkpos(L, 2, 1, (lua_Integer)len + 1, 1);
    size_t j = checkpos(L, 3, (lua_Integer)i - 1, (lua_Integer)len, len);
    s += i - 1;
    len = j - (i - 1);
  }
  size_t at;
  const char *err = dec_one(L, s, len, &at, NULL);
  if (err) {
    lua_settop(L, 1);
    lua_pushnil(L);
    lua_pushfstring(L, "ipc.decode: %s (at byte %I)", err, (lua_Integer)at);
    return 2;
  }
  return 1;
}

/* ipc.decodeframes(s [, i [, limit [, max]]]) -> t, n, next [, message [, size]]:
 * decode the complete frames (at most max) (4-byte big-endian length + encoding) of s
 * from byte i (default 1) on into t[1..n] (nil values leave holes: count
 * with n); next is the byte after them.  It stops before an incomplete
 * frame; at a frame longer than limit (default 2^31-1): message and size,
 * next at that frame; after a malformed one: message, next past it. */
static int lcodec_decodeframes(lua_State *L) {
  if (lua_type(L, 1) != LUA_TSTRING) return luaL_typeerror(L, 1, "string");
  size_t len;
  const char *s = lua_tolstring(L, 1, &len);
  size_t pos = checkpos(L, 2, 1, (lua_Integer)len + 1, 1) - 1;
  lua_Integer limit = luaL_optinteger(L, 3, 0x7FFFFFFF);
  luaL_argcheck(L, limit >= 0, 3, "limit must be >= 0");
  lua_Integer max = luaL_optinteger(L, 4, LUA_MAXINTEGER);
  luaL_argcheck(L, max >= 1, 4, "max must be >= 1");
  lua_settop(L, 3);
  size_t guess = (len - pos) / 16;
  if ((lua_Integer)guess > max) guess = (size_t)max;
  lua_createtable(L, guess > 4096 ? 4096 : (int)guess, 0);   /* t at 4 */
  struct scache cache;
  struct scache *cp = NULL;
  if (guess >= 4 && max >= 4) {   /* a few frames at least: worth the cache */
    lua_createtable(L, SCACHE_SIZE, 0);                         /* its strings at 5 */
    memset(&cache, 0, sizeof cache);
    cache.idx = 5;
    cp = &cache;
  }
  lua_Integer n = 0;
  while (len - pos >= 4 && n < max) {
    const unsigned char *h = (const unsigned char *)s + pos;
    size_t fl = ((size_t)h[0] << 24) | ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3];
    if ((lua_Integer)fl > limit) {
      lua_settop(L, 4);
      lua_pushinteger(L, n);
      lua_pushinteger(L, (lua_Integer)pos + 1);
      lua_pushfstring(L, "frame of %I bytes exceeds the limit %I", (lua_Integer)fl, limit);
      lua_pushinteger(L, (lua_Integer)fl);
      return 5;
    }
    if (len - pos - 4 < fl) break;
    size_t at;
    const char *err = dec_one(L, s + pos + 4, fl, &at, cp);
    if (err) {
      lua_settop(L, 4);
      lua_pushinteger(L, n);
      lua_pushinteger(L, (lua_Integer)(pos + 4 + fl) + 1);
      lua_pushfstring(L, "ipc.decode: %s (at byte %I)", err, (lua_Integer)at);
      return 4;
    }
    lua_rawseti(L, 4, ++n);
    pos += 4 + fl;
  }
  lua_settop(L, 4);
  lua_pushinteger(L, n);
  lua_pushinteger(L, (lua_Integer)pos + 1);
  return 3;
}

/* Add ipc.encode (with its buffer box as upvalue) and ipc.decode. */
void lipc_open_codec(lua_State *L) {
  cbuf *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  lua_newtable(L);
  lua_pushcfunction(L, cbuf_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushcclosure(L, lcodec_encode, 1);
  lua_setfield(L, -2, "encode");
  lua_pushcfunction(L, lcodec_decode);
  lua_setfield(L, -2, "decode");
  lua_pushcfunction(L, lcodec_decodeframes);
  lua_setfield(L, -2, "decodeframes");
  static const luaL_Reg fb_methods[] = {
    {"put", lfb_put}, {"bytes", lfb_bytes}, {"take", lfb_take}, {"unput", lfb_unput},
    {"len", lfb_len}, {"count", lfb_count}, {"clear", lfb_clear}, {NULL, NULL}
  };
  if (luaL_newmetatable(L, FRAMEBUF)) {
    lua_pushcfunction(L, cbuf_gc);      /* the cbuf is the first member */
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, lfb_tostring);
    lua_setfield(L, -2, "__tostring");
    luaL_newlib(L, fb_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, lcodec_framebuf);
  lua_setfield(L, -2, "framebuf");
}
