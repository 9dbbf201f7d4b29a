/* stderr logger; see pc_log.h. */
#include "pc_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static atomic_int log_level = PC_LOG_INFO;
static atomic_int status_shown;

int pc_log_status_shown(int shown)
{
    return atomic_exchange(&status_shown, shown);
}

void pc_log_clear_status(void)
{
    flockfile(stderr); /* (recursive: callers may hold it) */
    if (atomic_exchange(&status_shown, 0))
        fputs("\r\033[K", stderr);
    funlockfile(stderr);
}

void pc_log_set_level(int level)
{
    atomic_store(&log_level, level);
}

int pc_log_get_level(void)
{
    return atomic_load(&log_level);
}

int pc_log_level_parse(const char *s)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, names[i]) == 0)
            return i;
    return -1;
}

void pc_log(int level, const char *module, const char *fmt, ...)
{
    static const char *tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    if (level > atomic_load(&log_level) || level < 0)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    flockfile(stderr);
    pc_log_clear_status();
    fprintf(stderr, "%s.%03ldZ %s %s: ", stamp, ts.tv_nsec / 1000000, tags[level], module);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    funlockfile(stderr);
}

void pc_log_printable(char *dst, size_t dstlen, const void *src, size_t len)
{
    if (dstlen == 0)
        return;
    const unsigned char *p = src;
    size_t n = len < dstlen - 1 ? len : dstlen - 1;
    for (size_t i = 0; i < n; i++)
        dst[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
    dst[n] = '\0';
}

const char *pc_log_printable_str(char *dst, size_t dstlen, const char *s)
{
    if (s == NULL)
        s = "?";
    pc_log_printable(dst, dstlen, s, strlen(s));
    return dst;
}
