/*
 * JSON helpers over jansson: bounded parsing, typed field access, and the
 * {code, message} error bodies every HTTP API returns.
 */
#ifndef PC_JSON_H
#define PC_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "pc_error.h"

/*
 * Parses |len| bytes (not NUL-terminated) into |*out|. |len| must be ≤ |max|
 * (PC_ETOOBIG otherwise, checked before parsing). PC_EPARSE on malformed input
 * or a top-level value that is not an object; |err| (optional, ≥ 160 bytes)
 * receives a sentence.
 */
int pc_json_parse_object(const char *buf, size_t len, size_t max, json_t **out, char *err, size_t errlen) PC_MUST_CHECK;

/* Field accessors: NULL / |def| when absent or of another type. */
const char *pc_json_str(const json_t *obj, const char *key);
int64_t pc_json_int(const json_t *obj, const char *key, int64_t def);
double pc_json_num(const json_t *obj, const char *key, double def);

/* Serialises compactly with keys in insertion order; malloc'd, NULL on ENOMEM. */
char *pc_json_dump(const json_t *v);
/* Returns a malloc'd {"code":..., "message":...} document (never NULL unless ENOMEM). */
char *pc_json_error_body(const char *code, const char *message, size_t *len);

#endif
