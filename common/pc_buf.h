/*
 * Growable byte buffer with a hard ceiling (after curl's dynbuf): every
 * append checks the stated maximum first and fails with PC_ETOOBIG past it.
 * The contents are always NUL-terminated (the NUL is not counted in len).
 */
#ifndef PC_BUF_H
#define PC_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "pc_error.h"

typedef struct pc_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max; /* appends that would make len exceed max fail */
} pc_buf;

/* Caller-owned storage; |max| must be > 0. Cannot fail (allocates lazily). */
void pc_buf_init(pc_buf *b, size_t max);
/* Frees the contents; the buffer can be reused after pc_buf_init. */
void pc_buf_clear(pc_buf *b);
/* Empties without freeing. */
void pc_buf_reset(pc_buf *b);
/* PC_ETOOBIG past max, PC_ENOMEM. */
int pc_buf_append(pc_buf *b, const void *data, size_t len) PC_MUST_CHECK;
int pc_buf_append_str(pc_buf *b, const char *s) PC_MUST_CHECK;
int pc_buf_printf(pc_buf *b, const char *fmt, ...) PC_MUST_CHECK __attribute__((format(printf, 2, 3)));
/* Makes room for |extra| more bytes (plus the NUL) so a caller can write into data + len directly
 * and then advance len itself. PC_ETOOBIG past max, PC_ENOMEM. */
int pc_buf_reserve(pc_buf *b, size_t extra) PC_MUST_CHECK;
/* Decimal digits of |v|, without printf's cost (hot response paths). */
int pc_buf_append_u64(pc_buf *b, uint64_t v) PC_MUST_CHECK;
/* Writes the decimal digits of |v| at |p| (at most 20, no NUL) and returns the end. Cannot fail. */
char *pc_put_u64(char *p, uint64_t v);
/* Hands the malloc'd contents to the caller (never NULL on success) and resets the buffer. */
char *pc_buf_steal(pc_buf *b, size_t *len);

#endif
