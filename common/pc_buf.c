/* Bounded dynamic buffer; see pc_buf.h. */
#include "pc_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pc_buf_init(pc_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void pc_buf_clear(pc_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void pc_buf_reset(pc_buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

static int reserve(pc_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return PC_ETOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return PC_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int pc_buf_reserve(pc_buf *b, size_t extra)
{
    return reserve(b, extra);
}

int pc_buf_append(pc_buf *b, const void *data, size_t len)
{
    int r = reserve(b, len);
    if (r != 0)
        return r;
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int pc_buf_append_str(pc_buf *b, const char *s)
{
    return pc_buf_append(b, s, strlen(s));
}

int pc_buf_printf(pc_buf *b, const char *fmt, ...)
{
    /* one pass when the result fits the room already allocated, a second only to grow */
    size_t room = b->data != NULL ? b->cap - b->len : 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(room > 0 ? b->data + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        return PC_EINVAL;
    if ((size_t)n < room) { /* cap never exceeds max + 1, so this is within the ceiling */
        b->len += (size_t)n;
        return 0;
    }
    if (b->data != NULL)
        b->data[b->len] = '\0';
    int r = reserve(b, (size_t)n);
    if (r != 0)
        return r;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *pc_put_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    memcpy(p, tmp + sizeof(tmp) - n, n);
    return p + n;
}

int pc_buf_append_u64(pc_buf *b, uint64_t v)
{
    char tmp[20];
    return pc_buf_append(b, tmp, (size_t)(pc_put_u64(tmp, v) - tmp));
}

char *pc_buf_steal(pc_buf *b, size_t *len)
{
    if (b->data == NULL && reserve(b, 0) != 0)
        return NULL;
    char *p = b->data;
    if (len != NULL)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
