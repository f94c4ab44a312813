/*
 * codec.h - the value codec of csrc/codec.c for other C code: encode a Lua
 * value into a C buffer and decode one from C memory, without a Lua string
 * of the bytes on either side (used by ring:sendv / ring:recvv).
 */
#ifndef LIPC_CODEC_H
#define LIPC_CODEC_H

#include <stddef.h>
#include "lua.h"

/* A growing malloc'd byte buffer (the caller frees p; zero-initialized is empty). */
typedef struct lipc_buf {
  char *p;
  size_t len, cap;
} lipc_buf;

/* Encode the value at stack index idx (ipc.encode's format, no frame) into
 * b, replacing what it held: b->p[0 .. return value) is the encoding.
 * Raises like ipc.encode on a value it cannot encode or out of memory; b
 * then still owns its memory. */
size_t lipc_encode_to(lua_State *L, int idx, lipc_buf *b);

/* Decode the encoding p[0..n) and push its value: NULL; or the error
 * (the stack is left as it was) with *at its byte offset. */
const char *lipc_decode_from(lua_State *L, const char *p, size_t n, size_t *at);

/* Free b's memory when it grew past 1 MiB (after its bytes were used). */
void lipc_buf_trim(lipc_buf *b);

#endif
