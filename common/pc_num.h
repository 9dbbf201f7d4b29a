/*
 * Decimal integers from the network, files and the command line, in one strict spelling: ASCII digits
 * (a '-' first only when negative values are allowed), no sign '+', no spaces, overflow checked, the
 * range checked. Parsers that take "what strtoll accepts" split one value into many spellings (" 7",
 * "+7", "07"), which splits edge caches, signed URLs and cursors; this is the one parser they share.
 */
#ifndef PC_NUM_H
#define PC_NUM_H

#include <stddef.h>
#include <stdint.h>

#include "pc_error.h"

/* No leading zero ("0" itself is fine) and no "-0": the one spelling a value has when it is issued by
 * us (a cursor, a signed URL's expiry), so that every other spelling is refused. */
#define PC_NUM_CANONICAL 1u

/* Parses |len| bytes of |s| (no NUL needed) as a decimal integer in [lo, hi]. 0 with |*out| set, or
 * PC_EPARSE (empty, a stray byte, a sign where none belongs, a leading zero under PC_NUM_CANONICAL,
 * out of range, or past int64). */
int pc_parse_int(const char *s, size_t len, int64_t lo, int64_t hi, unsigned flags, int64_t *out) PC_MUST_CHECK;

/* The same for a NUL-terminated string. */
int pc_parse_int_str(const char *s, int64_t lo, int64_t hi, unsigned flags, int64_t *out) PC_MUST_CHECK;

#endif
