/* jansson helpers; see pc_json.h. */
#include "pc_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pc_json_parse_object(const char *buf, size_t len, size_t max, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (len > max) {
        if (err != NULL)
            snprintf(err, errlen, "JSON body of %zu bytes exceeds the %zu-byte limit", len, max);
        return PC_ETOOBIG;
    }
    if (len == 0) { /* jansson's own message for it is "wrong arguments" at line -1 */
        if (err != NULL)
            snprintf(err, errlen, "malformed JSON: empty, where an object was expected");
        return PC_EPARSE;
    }
    json_error_t jerr;
    json_t *v = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (v == NULL) {
        if (err != NULL)
            snprintf(err, errlen, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        return PC_EPARSE;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        if (err != NULL)
            snprintf(err, errlen, "expected a JSON object");
        return PC_EPARSE;
    }
    *out = v;
    return 0;
}

const char *pc_json_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

int64_t pc_json_int(const json_t *obj, const char *key, int64_t def)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

double pc_json_num(const json_t *obj, const char *key, double def)
{
    json_t *v = json_object_get(obj, key);
    return json_is_number(v) ? json_number_value(v) : def;
}

char *pc_json_dump(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
}

/* A copy of |s| with bytes that break UTF-8 replaced by '?', so user text cannot break a body. */
static char *utf8_safe(const char *s)
{
    json_t *t = json_string(s);
    if (t != NULL) {
        json_decref(t);
        return strdup(s);
    }
    char *c = strdup(s);
    for (char *p = c; p != NULL && *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    return c;
}

char *pc_json_error_body(const char *code, const char *message, size_t *len)
{
    char *c = utf8_safe(code), *m = utf8_safe(message);
    json_t *o = c != NULL && m != NULL ? json_pack("{s:s, s:s}", "code", c, "message", m) : NULL;
    free(c);
    free(m);
    char *s = o != NULL ? pc_json_dump(o) : NULL;
    json_decref(o);
    if (s != NULL && len != NULL)
        *len = strlen(s);
    return s;
}
