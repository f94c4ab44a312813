/*
 * codec.c - ipc.encode / ipc.decode: Lua values to a compact, versioned
 * binary string and back (format: doc/codec.md).
 *
 * Encoding writes into a growing malloc'd buffer owned by a userdata box
 * kept as an upvalue, so a raised error never leaks it (the box is reused
 * by the next call and freed by __gc).  Decoding never reads past its
 * input, never raises for bad bytes (nil, message instead) and never
 * preallocates more table slots than the input could describe.
 */
#include "core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CODEC_MAGIC 0xB1          /* 0xB_: lipc codec, _1: version 1 */
#define CODEC_MAXDEPTH 200        /* nesting limit of tables */

enum {
  T_NIL = 0x00, T_FALSE = 0x01, T_TRUE = 0x02, T_INT = 0x03, T_FLOAT = 0x04,
  T_STR = 0x05, T_TABLE = 0x06,
  T_SHORTSTR = 0x40,              /* 0x40..0x7F: string of length 0..63 */
  T_SMALLINT = 0x80               /* 0x80..0xFF: integer 0..127 */
};

/* The reusable output buffer (a userdata upvalue of ipc.encode). */
typedef struct cbuf {
  char *p;
  size_t len, cap;
} cbuf;

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

/* Encoder state: the buffer, the ancestors (cycle check) and the path. */
typedef struct enc {
  lua_State *L;
  cbuf *b;
  int depth;
  const void *anc[CODEC_MAXDEPTH + 1];   /* tables on the current path */
  int keyidx[CODEC_MAXDEPTH + 1];        /* stack index of the key, or 0 */
  lua_Integer arridx[CODEC_MAXDEPTH + 1];/* array index when keyidx == 0 */
} enc;

/* Raise an encode error naming what and the path to it. */
static int enc_error(enc *e, const char *what) {
  lua_State *L = e->L;
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

/* Make room for n more bytes; raises on out of memory (the box keeps p). */
static char *enc_reserve(enc *e, size_t n) {
  cbuf *b = e->b;
  if (b->cap - b->len < n) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n) {
      if (cap > ((size_t)-1) / 2) luaL_error(e->L, "ipc.encode: value too large");
      cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (p == NULL) luaL_error(e->L, "ipc.encode: not enough memory");
    b->p = p;
    b->cap = cap;
  }
  return b->p + b->len;
}

/* Write v as a LEB128 varint at p; returns the byte count (1..10). */
static int put_varint(char *p, uint64_t v) {
  int n = 0;
  while (v >= 0x80) {
    p[n++] = (char)((v & 0x7F) | 0x80);
    v >>= 7;
  }
  p[n++] = (char)v;
  return n;
}

/* Append a string value (tag, length, bytes). */
static void enc_string(enc *e, const char *s, size_t n) {
  char *p = enc_reserve(e, n + 11);
  size_t k = 0;
  if (n < 64) {
    p[k++] = (char)(T_SHORTSTR + n);
  } else {
    p[k++] = T_STR;
    k += (size_t)put_varint(p + k, n);
  }
  memcpy(p + k, s, n);
  e->b->len += k + n;
}

/* Append a number value. */
static void enc_number(enc *e, int idx) {
  lua_State *L = e->L;
  char *p = enc_reserve(e, 11);
  if (lua_isinteger(L, idx)) {
    lua_Integer i = lua_tointeger(L, idx);
    if (i >= 0 && i < 128) {
      p[0] = (char)(T_SMALLINT + i);
      e->b->len += 1;
    } else {
      uint64_t u = (uint64_t)i;
      uint64_t z = (u << 1) ^ (uint64_t)-(int64_t)(u >> 63);  /* zigzag */
      p[0] = T_INT;
      e->b->len += 1 + (size_t)put_varint(p + 1, z);
    }
  } else {
    double d = (double)lua_tonumber(L, idx);
    uint64_t u;
    memcpy(&u, &d, 8);
    p[0] = T_FLOAT;
    for (int j = 0; j < 8; j++) p[1 + j] = (char)(u >> (8 * j));  /* little-endian */
    e->b->len += 9;
  }
}

/* Reserve one byte for a count at position pos, later fixed by put_count. */
static size_t count_slot(enc *e) {
  enc_reserve(e, 1);
  return e->b->len++;
}

/* Store count n at the slot pos, moving what follows if it needs > 1 byte. */
static void put_count(enc *e, size_t pos, uint64_t n) {
  char tmp[10];
  int k = put_varint(tmp, n);
  if (k > 1) {
    enc_reserve(e, (size_t)k - 1);
    char *p = e->b->p;
    memmove(p + pos + k, p + pos + 1, e->b->len - pos - 1);
    e->b->len += (size_t)k - 1;
  }
  memcpy(e->b->p + pos, tmp, (size_t)k);
}

static void enc_value(enc *e, int idx);

/* Append the table at idx: array part 1..n (no holes), then other pairs. */
static void enc_table(enc *e, int idx) {
  lua_State *L = e->L;
  const void *me = lua_topointer(L, idx);
  if (e->depth >= CODEC_MAXDEPTH) {
    lua_pushfstring(L, "tables nested deeper than %d levels", CODEC_MAXDEPTH);
    enc_error(e, lua_tostring(L, -1));
  }
  for (int i = 1; i <= e->depth; i++)
    if (e->anc[i] == me) enc_error(e, "cycle (a table contains itself)");
  luaL_checkstack(L, 6, "ipc.encode: nesting too deep");
  int d = ++e->depth;
  e->anc[d] = me;
  e->keyidx[d] = 0;
  char *p = enc_reserve(e, 1);
  *p = T_TABLE;
  e->b->len++;
  /* array part: t[1], t[2], ... up to the first nil */
  size_t slot = count_slot(e);
  lua_Integer n = 0;
  for (;;) {
    if (lua_rawgeti(L, idx, n + 1) == LUA_TNIL) { lua_pop(L, 1); break; }
    n++;
    e->arridx[d] = n;
    enc_value(e, lua_gettop(L));
    lua_pop(L, 1);
  }
  put_count(e, slot, (uint64_t)n);
  /* hash part: every other key */
  slot = count_slot(e);
  uint64_t m = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int kt = lua_type(L, -2);
    if (kt == LUA_TNUMBER && lua_isinteger(L, -2)) {
      lua_Integer k = lua_tointeger(L, -2);
      if (k >= 1 && k <= n) { lua_pop(L, 1); continue; }
    }
    int top = lua_gettop(L);
    e->keyidx[d] = top - 1;
    if (kt == LUA_TSTRING || kt == LUA_TNUMBER || kt == LUA_TBOOLEAN) {
      enc_value(e, top - 1);
    } else {
      lua_pushfstring(L, "cannot encode a %s key", luaL_typename(L, top - 1));
      e->keyidx[d] = 0;
      e->arridx[d] = 0;
      e->depth--;
      enc_error(e, lua_tostring(L, -1));
    }
    enc_value(e, top);
    lua_pop(L, 1);
    m++;
  }
  put_count(e, slot, m);
  e->depth--;
}

/* Append the value at idx. */
static void enc_value(enc *e, int idx) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: *enc_reserve(e, 1) = T_NIL; e->b->len++; break;
    case LUA_TBOOLEAN:
      *enc_reserve(e, 1) = lua_toboolean(L, idx) ? T_TRUE : T_FALSE;
      e->b->len++;
      break;
    case LUA_TNUMBER: enc_number(e, idx); break;
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      enc_string(e, s, n);
      break;
    }
    case LUA_TTABLE: enc_table(e, idx); break;
    default: {
      lua_pushfstring(L, "cannot encode a %s", luaL_typename(L, idx));
      enc_error(e, lua_tostring(L, -1));
    }
  }
}

/* ipc.encode(value) -> string. */
static int lcodec_encode(lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  cbuf *b = lua_touserdata(L, lua_upvalueindex(1));
  enc st;   /* ~4 KiB of C stack; nothing in it needs freeing */
  enc *e = &st;
  e->L = L;
  e->b = b;
  e->depth = 0;
  b->len = 0;
  *enc_reserve(e, 1) = (char)CODEC_MAGIC;
  b->len = 1;
  enc_value(e, 1);
  lua_pushlstring(L, b->p, b->len);
  if (b->cap > CBUF_KEEP) {
    free(b->p);
    b->p = NULL;
    b->cap = 0;
  }
  b->len = 0;
  return 1;
}

/* ---- decoding ---------------------------------------------------------- */

typedef struct dec {
  lua_State *L;
  const unsigned char *p, *end;
  size_t budget;          /* table slots the remaining input can justify */
  const char *err;        /* first error, or NULL */
  int depth;
} dec;

/* Record an error (the first one wins); returns -1. */
static int dec_fail(dec *d, const char *msg) {
  if (d->err == NULL) d->err = msg;
  return -1;
}

/* Read a varint into *v; -1 on truncation or overflow. */
static int get_varint(dec *d, uint64_t *v) {
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

static int dec_value(dec *d);

/* Read a table (after its tag) and push it. */
static int dec_table(dec *d) {
  lua_State *L = d->L;
  if (d->depth >= CODEC_MAXDEPTH) return dec_fail(d, "tables nested too deep");
  if (!lua_checkstack(L, 4)) return dec_fail(d, "tables nested too deep");
  uint64_t n, m;
  if (get_varint(d, &n) < 0) return -1;
  /* every element takes at least one byte: refuse counts the input cannot hold */
  if (n > (uint64_t)(d->end - d->p) || n > d->budget) return dec_fail(d, "array count larger than the input");
  d->budget -= (size_t)n;
  d->depth++;
  /* the hash count follows the array part: a first guess of 0 is fine */
  lua_createtable(L, (int)(n > INT32_MAX ? INT32_MAX : n), 0);
  int t = lua_gettop(L);
  for (uint64_t i = 1; i <= n; i++) {
    if (dec_value(d) < 0) return -1;
    lua_rawseti(L, t, (lua_Integer)i);
  }
  if (get_varint(d, &m) < 0) return -1;
  if (m > (uint64_t)(d->end - d->p) / 2 || m > d->budget) return dec_fail(d, "pair count larger than the input");
  d->budget -= (size_t)m;
  for (uint64_t i = 0; i < m; i++) {
    if (dec_value(d) < 0) return -1;
    int kt = lua_type(L, -1);
    if (kt == LUA_TNIL) return dec_fail(d, "nil table key");
    if (kt == LUA_TTABLE) return dec_fail(d, "table used as a table key");
    if (kt == LUA_TNUMBER && !lua_isinteger(L, -1)) {
      lua_Number k = lua_tonumber(L, -1);
      if (k != k) return dec_fail(d, "NaN table key");
    }
    if (dec_value(d) < 0) return -1;
    lua_rawset(L, t);
  }
  d->depth--;
  return 0;
}

/* Read one value and push it; -1 (nothing reliable pushed) on error. */
static int dec_value(dec *d) {
  lua_State *L = d->L;
  if (d->p >= d->end) return dec_fail(d, "truncated input");
  unsigned tag = *d->p++;
  if (tag >= T_SMALLINT) {
    lua_pushinteger(L, (lua_Integer)(tag - T_SMALLINT));
    return 0;
  }
  if (tag >= T_SHORTSTR) {
    size_t n = tag - T_SHORTSTR;
    if ((size_t)(d->end - d->p) < n) return dec_fail(d, "truncated string");
    lua_pushlstring(L, (const char *)d->p, n);
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

/* ipc.decode(bytes) -> value | nil, message. */
static int lcodec_decode(lua_State *L) {
  if (lua_type(L, 1) != LUA_TSTRING) return luaL_typeerror(L, 1, "string");
  size_t len;
  const char *s = lua_tolstring(L, 1, &len);
  lua_settop(L, 1);
  dec d = { L, (const unsigned char *)s, (const unsigned char *)s + len, len, NULL, 0 };
  if (len == 0) d.err = "empty input";
  else if ((unsigned char)s[0] != CODEC_MAGIC)
    d.err = ((unsigned char)s[0] & 0xF0) == (CODEC_MAGIC & 0xF0) ? "unsupported codec version"
                                                                   : "not lipc-encoded data (bad magic byte)";
  else {
    d.p++;
    if (dec_value(&d) == 0 && d.p != d.end) d.err = "trailing bytes after the value";
  }
  if (d.err) {
    lua_settop(L, 1);
    lua_pushnil(L);
    lua_pushfstring(L, "ipc.decode: %s (at byte %I)", d.err, (lua_Integer)((const char *)d.p - s));
    return 2;
  }
  return 1;
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
}
