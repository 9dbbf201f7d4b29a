/* The error table's accessors; see pc_error.h. */
#include "pc_error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

const char *pc_strerror(int err)
{
    switch (err) {
    case PC_OK:
        return "success";
#define PC_XX(sym, code, msg) \
    case PC_##sym:            \
        return msg;
        PC_ERRNO_MAP(PC_XX)
#undef PC_XX
    default:
        return "unknown error";
    }
}

const char *pc_err_name(int err)
{
    switch (err) {
    case PC_OK:
        return "ok";
#define PC_XX(sym, code, msg) \
    case PC_##sym:            \
        return code;
        PC_ERRNO_MAP(PC_XX)
#undef PC_XX
    default:
        return "unknown";
    }
}

int pc_err_from_errno(int errnum)
{
    switch (errnum) {
    case 0:
        return PC_OK;
    case ENOMEM:
        return PC_ENOMEM;
    case ENOENT:
    case ENOTDIR:
        return PC_ENOENT;
    case EEXIST:
        return PC_EEXIST;
    case ENOSPC:
    case EDQUOT:
        return PC_ENOSPC;
    case EINVAL:
        return PC_EINVAL;
    case EACCES:
    case EPERM:
        return PC_EDENIED;
    case EROFS:
        return PC_EROFS;
    case EISDIR:
        return PC_EISDIR;
    case EFBIG:
        return PC_ETOOBIG;
    case EAGAIN:
        return PC_EAGAIN;
    case ECANCELED:
        return PC_ECANCELED;
    case ETIMEDOUT:
        return PC_ETIMEDOUT;
    case ECONNREFUSED:
    case ECONNRESET:
    case EPIPE:
    case ENETUNREACH:
    case EHOSTUNREACH:
        return PC_ENET;
    default:
        return PC_EIO;
    }
}

static _Thread_local char detail[512];

const char *pc_err_detail(void)
{
    return detail;
}

void pc_err_detail_set(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
}
