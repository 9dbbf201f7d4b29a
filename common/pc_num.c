/* Strict decimal integers; see pc_num.h. */
#include "pc_num.h"

#include <string.h>

int pc_parse_int(const char *s, size_t len, int64_t lo, int64_t hi, unsigned flags, int64_t *out)
{
    int neg = len > 0 && s[0] == '-';
    if (neg && lo >= 0)
        return PC_EPARSE;
    size_t i = neg ? 1 : 0;
    if (i == len || ((flags & PC_NUM_CANONICAL) && s[i] == '0' && (len - i > 1 || neg)))
        return PC_EPARSE;
    /* accumulated as a negative number, whose range is one larger: INT64_MIN parses too */
    int64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return PC_EPARSE;
        int d = s[i] - '0';
        if (v < (INT64_MIN + d) / 10)
            return PC_EPARSE;
        v = v * 10 - d;
    }
    if (!neg) {
        if (v == INT64_MIN)
            return PC_EPARSE;
        v = -v;
    }
    if (v < lo || v > hi)
        return PC_EPARSE;
    *out = v;
    return 0;
}

int pc_parse_int_str(const char *s, int64_t lo, int64_t hi, unsigned flags, int64_t *out)
{
    return pc_parse_int(s, strlen(s), lo, hi, flags, out);
}
