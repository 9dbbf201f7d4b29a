/* Range and entity-tag parsing; see pc_http_util.h. */
#include "pc_http_util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>

/* Decimal digits; a value past 2^64 - 1 saturates there (a range position beyond any file is still a
 * position: past the end for a start, the end for a last byte). */
static int parse_u64(const char *s, size_t n, uint64_t *v)
{
    if (n == 0)
        return -1;
    uint64_t r = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        r = r > (UINT64_MAX - d) / 10 ? UINT64_MAX : r * 10 + d;
    }
    *v = r;
    return 0;
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && (**s == ' ' || **s == '\t'))
        (*s)++, (*n)--;
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

int pc_http_parse_range(const char *value, size_t len, uint64_t size, uint64_t *start, uint64_t *rlen)
{
    if (len < 7 || len > 64 || strncasecmp(value, "bytes=", 6) != 0)
        return 0;
    const char *spec = value + 6;
    size_t n = len - 6;
    if (memchr(spec, ',', n) != NULL)
        return 0; /* several ranges: serve the whole representation (RFC 9110 allows it) */
    const char *dash = memchr(spec, '-', n);
    if (dash == NULL)
        return 0;
    const char *a = spec, *b = dash + 1;
    size_t an = (size_t)(dash - spec), bn = n - an - 1;
    trim(&a, &an);
    trim(&b, &bn);
    uint64_t first, last;
    if (an == 0) { /* suffix: the last n bytes */
        if (parse_u64(b, bn, &last) != 0)
            return 0;
        if (last == 0 || size == 0)
            return -1;
        if (last > size)
            last = size;
        *start = size - last;
        *rlen = last;
        return 1;
    }
    if (parse_u64(a, an, &first) != 0)
        return 0;
    if (bn == 0) {
        last = size > 0 ? size - 1 : 0;
    } else {
        if (parse_u64(b, bn, &last) != 0 || last < first)
            return 0;
        if (last >= size)
            last = size > 0 ? size - 1 : 0;
    }
    if (first >= size)
        return -1;
    *start = first;
    *rlen = last - first + 1;
    return 1;
}

int pc_http_etag_list_matches(const char *value, size_t len, const char *etag, size_t etag_len, int strong)
{
    const char *p = value, *end = value + len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p == end)
            break;
        if (*p == '*')
            return 1;
        int weak = end - p > 2 && p[0] == 'W' && p[1] == '/';
        if (weak)
            p += 2;
        const char *q = p;
        if (q < end && *q == '"') {
            const char *close = memchr(q + 1, '"', (size_t)(end - q - 1));
            if (close == NULL)
                return 0;
            q = close + 1;
        } else {
            while (q < end && *q != ',')
                q++;
        }
        if (!(weak && strong) && (size_t)(q - p) == etag_len && memcmp(p, etag, etag_len) == 0)
            return 1;
        p = q;
    }
    return 0;
}

int pc_url_is_loopback(const char *url)
{
    const char *h = strstr(url, "://");
    h = h != NULL ? h + 3 : url;
    const char *at = strchr(h, '@'), *slash = strchr(h, '/');
    if (at != NULL && (slash == NULL || at < slash))
        return 0; /* user@host: http://127.0.0.1:1@192.0.2.2/ is not a loopback origin */
    int bracket = h[0] == '[';
    size_t n = bracket ? strcspn(h + 1, "]") : strcspn(h, ":/?#");
    char host[64];
    if (n == 0 || n >= sizeof(host) || (bracket && h[1 + n] != ']'))
        return 0;
    memcpy(host, h + bracket, n);
    host[n] = '\0';
    struct in_addr a4;
    struct in6_addr a6;
    if (!bracket && inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (bracket)
        return inet_pton(AF_INET6, host, &a6) == 1 && memcmp(&a6, &in6addr_loopback, sizeof(a6)) == 0;
    return strcasecmp(host, "localhost") == 0;
}

int pc_http_metric_head(pc_buf *o, const char *name, const char *type, const char *help)
{
    return pc_buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int64_t pc_http_date_parse(const char *value, size_t len)
{
    static const char *const forms[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"};
    char tmp[64];
    if (value == NULL || len == 0 || len >= sizeof(tmp) || memchr(value, '\0', len) != NULL)
        return -1;
    memcpy(tmp, value, len);
    tmp[len] = '\0';
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        const char *end = strptime(tmp, forms[i], &tm); /* the C locale's English names: no setlocale here */
        if (end != NULL && *end == '\0')
            return (int64_t)timegm(&tm);
    }
    return -1;
}
