/*
 * Pure parsers for HTTP request headers that servers of several components
 * need: single byte ranges (RFC 9110 §14) and entity-tag lists
 * (If-None-Match). No I/O; fuzzed in fuzz/fuzz_http_range.c.
 */
#ifndef PC_HTTP_UTIL_H
#define PC_HTTP_UTIL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parses a Range header value ("bytes=a-b", "bytes=a-", "bytes=-n") against
 * a representation of |size| bytes. Returns 1 with |*start| and |*len| set,
 * 0 when the header should be ignored (malformed, another unit, several
 * ranges: the whole representation is served), or -1 when unsatisfiable
 * (416). |value| need not be NUL-terminated; values over 64 bytes are ignored.
 */
int pc_http_parse_range(const char *value, size_t len, uint64_t size, uint64_t *start, uint64_t *rlen);

/*
 * Does the If-None-Match list |value| match |etag| (a quoted entity tag)?
 * Weak comparison: "W/" prefixes are ignored; "*" matches. Returns 1 or 0.
 */
int pc_http_etag_list_matches(const char *value, size_t len, const char *etag, size_t etag_len);

#endif
