/*
 * Pure parsers for HTTP request headers that servers of several components
 * need: single byte ranges (RFC 9110 §14) and entity-tag lists
 * (If-None-Match), and whether a URL's host is this machine. No I/O (no name
 * is resolved); the range parser is fuzzed in fuzz/fuzz_http_range.c. Also the
 * head of a metric in Prometheus's text format, which servers' /metrics share.
 */
#ifndef PC_HTTP_UTIL_H
#define PC_HTTP_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "pc_buf.h"
#include "pc_error.h"

/*
 * Parses a Range header value ("bytes=a-b", "bytes=a-", "bytes=-n") against
 * a representation of |size| bytes. Returns 1 with |*start| and |*len| set,
 * 0 when the header should be ignored (malformed, another unit, several
 * ranges: the whole representation is served), or -1 when unsatisfiable
 * (416). |value| need not be NUL-terminated; values over 64 bytes are ignored.
 */
int pc_http_parse_range(const char *value, size_t len, uint64_t size, uint64_t *start, uint64_t *rlen);

/*
 * Does the entity-tag list |value| match |etag| (a quoted strong entity tag)?
 * |strong| 0 (If-None-Match): weak comparison, "W/" prefixes are ignored;
 * |strong| 1 (If-Match): a weak tag in the list never matches. "*" matches.
 * Returns 1 or 0.
 */
int pc_http_etag_list_matches(const char *value, size_t len, const char *etag, size_t etag_len, int strong);

/*
 * Is the host of |url| ("http://HOST[:PORT]/...", IPv6 in brackets) this
 * machine with no network in between: an address literal in 127.0.0.0/8, ::1,
 * or the name "localhost"? Any other name is not (it may resolve anywhere).
 */
int pc_url_is_loopback(const char *url);

/*
 * An HTTP date (If-Modified-Since, If-Unmodified-Since, If-Range) in the three forms RFC 9110 §5.6.7 makes
 * recipients accept and no other: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), RFC 850 ("Sunday,
 * 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37 1994"), all GMT. Seconds since the epoch,
 * or -1 for anything else (a condition with it is then ignored, as the RFC says of an invalid date).
 */
int64_t pc_http_date_parse(const char *value, size_t len);

/* One metric's "# HELP" and "# TYPE" lines in Prometheus text format (0.0.4). PC_ENOMEM. */
int pc_http_metric_head(pc_buf *o, const char *name, const char *type, const char *help) PC_MUST_CHECK;

#endif
