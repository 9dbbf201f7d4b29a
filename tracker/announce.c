/* Announce request codec; see announce.h and docs/protocol.md. */
#include "announce.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pc_json.h"

#define COUNTER_MAX (1ULL << 53) /* exact in every JSON implementation */

static int fail(pc_announce_error *err, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(pc_announce_error *err, const char *code, const char *fmt, ...)
{
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return PC_EPARSE;
}

const char *pc_event_name(int event)
{
    switch (event) {
    case PC_EV_STARTED: return "started";
    case PC_EV_PERIODIC: return "periodic";
    case PC_EV_STOPPED: return "stopped";
    default: return "unknown";
    }
}

/* An integer field in [0, max]. */
static int get_uint(const json_t *v, const char *name, uint64_t max, uint64_t *out, pc_announce_error *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
        return fail(err, "bad_field", "'%s' must be an integer from 0 to %" PRIu64, name, max);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_u32(const json_t *v, const char *name, uint64_t max, uint32_t *out, pc_announce_error *err)
{
    uint64_t x = 0;
    int r = get_uint(v, name, max, &x, err);
    if (r == 0)
        *out = (uint32_t)x;
    return r;
}

#define REND_EXTRA "_-" /* besides [A-Za-z0-9] in rendition ids */

/* A string of 1..max characters from [A-Za-z0-9] plus |extra|. */
static int token_ok(const char *s, size_t len, size_t max, const char *extra)
{
    int ok = s != NULL && len >= 1 && len <= max;
    for (size_t i = 0; ok && i < len; i++) {
        char c = s[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             (c != '\0' && strchr(extra, c) != NULL);
    }
    return ok;
}

int pc_region_valid(const char *s)
{
    return token_ok(s, strlen(s), PC_REGION_MAX, PC_REGION_EXTRA);
}

int pc_rendition_valid(const char *s)
{
    return token_ok(s, strlen(s), PC_REND_ID_MAX, REND_EXTRA);
}

static int get_token(const json_t *v, const char *name, size_t max, const char *extra, char *out, pc_announce_error *err)
{
    const char *s = json_string_value(v);
    size_t len = s != NULL ? json_string_length(v) : 0;
    if (!token_ok(s, len, max, extra))
        return fail(err, "bad_field", "'%s' must be 1 to %zu characters of [A-Za-z0-9%s]", name, max, extra);
    memcpy(out, s, len + 1);
    return 0;
}

/* Exactly |n| bytes, base64 (url-safe without padding when |url|). */
static int get_b64(const json_t *v, const char *name, uint8_t *out, size_t n, int url, pc_announce_error *err)
{
    const char *s = json_string_value(v);
    size_t got = 0;
    if (s == NULL || json_string_length(v) > 2 * pc_b64_encoded_len(n, url) ||
        pc_b64_decode(s, json_string_length(v), out, n, &got, url) != 0 || got != n)
        return fail(err, "bad_field", "'%s' must be %s of exactly %zu bytes", name, url ? "base64url" : "base64", n);
    return 0;
}

static int decode_counters(const json_t *o, pc_counters *c, pc_announce_error *err)
{
    if (!json_is_object(o))
        return fail(err, "bad_field", "'counters' must be an object");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        uint64_t *dst = NULL, max = UINT32_MAX; /* times in ms and stall counts fit 32 bits */
        if (strcmp(k, "bytes_cdn") == 0)
            dst = &c->bytes_cdn;
        else if (strcmp(k, "bytes_p2p") == 0)
            dst = &c->bytes_p2p;
        else if (strcmp(k, "bytes_up") == 0)
            dst = &c->bytes_up;
        else if (strcmp(k, "stalls") == 0)
            dst = &c->stalls;
        else if (strcmp(k, "stall_ms") == 0)
            dst = &c->stall_ms;
        else if (strcmp(k, "startup_ms") == 0)
            dst = &c->startup_ms;
        else if (strcmp(k, "played_ms") == 0)
            dst = &c->played_ms;
        else
            return fail(err, "unknown_field", "unknown field 'counters.%.64s'", k);
        if (dst == &c->bytes_cdn || dst == &c->bytes_p2p || dst == &c->bytes_up)
            max = COUNTER_MAX;
        char name[48];
        snprintf(name, sizeof(name), "counters.%s", k);
        if (get_uint(v, name, max, dst, err) != 0)
            return PC_EPARSE;
    }
    return 0;
}

static int decode_have(const json_t *a, pc_announce *out, pc_announce_error *err)
{
    if (!json_is_array(a) || json_array_size(a) > PC_HAVE_MAX)
        return fail(err, "bad_field", "'have' must be an array of at most %d [first, last] ranges", PC_HAVE_MAX);
    size_t i;
    json_t *r;
    json_array_foreach(a, i, r) {
        uint32_t lo, hi;
        if (!json_is_array(r) || json_array_size(r) != 2 ||
            get_u32(json_array_get(r, 0), "have[][0]", PC_SEGMENT_MAX - 1, &lo, err) != 0 ||
            get_u32(json_array_get(r, 1), "have[][1]", PC_SEGMENT_MAX - 1, &hi, err) != 0 || lo > hi)
            return fail(err, "bad_field", "'have' ranges must be [first, last] segment indices with first <= last < %u",
                        PC_SEGMENT_MAX);
        if (out->have_hi == PC_NONE || hi > out->have_hi) {
            out->have_lo = lo;
            out->have_hi = hi;
        }
    }
    return 0;
}

static int decode_banned(const json_t *a, pc_announce *out, pc_announce_error *err)
{
    if (!json_is_array(a) || json_array_size(a) > PC_ANNOUNCE_BANNED_MAX)
        return fail(err, "bad_field", "'banned' must be an array of at most %d keys", PC_ANNOUNCE_BANNED_MAX);
    size_t i;
    json_t *k;
    json_array_foreach(a, i, k) {
        if (get_b64(k, "banned[]", out->banned[i], PC_ED25519_PK_LEN, 0, err) != 0)
            return PC_EPARSE;
    }
    out->nbanned = (uint32_t)json_array_size(a);
    return 0;
}

static int decode_proof(const json_t *o, pc_announce *out, pc_announce_error *err)
{
    const json_t *ts = json_object_get(o, "ts"), *sig = json_object_get(o, "sig");
    if (!json_is_object(o) || json_object_size(o) != 2 || ts == NULL || sig == NULL)
        return fail(err, "bad_field", "'proof' must be {\"ts\": unix seconds, \"sig\": base64 signature}");
    if (get_uint(ts, "proof.ts", UINT32_MAX * 4ULL, &out->proof_ts, err) != 0 ||
        get_b64(sig, "proof.sig", out->proof_sig, sizeof(out->proof_sig), 0, err) != 0)
        return PC_EPARSE;
    out->has_proof = 1;
    return 0;
}

enum { F_PEER_ID = 1 << 0, F_KEY = 1 << 1, F_PORT = 1 << 2, F_VIDEO = 1 << 3, F_REND = 1 << 4, F_EVENT = 1 << 5 };

static int decode_field(const char *k, const json_t *v, pc_announce *out, unsigned *seen, pc_announce_error *err)
{
    if (strcmp(k, "peer_id") == 0) {
        const char *s = json_string_value(v);
        if (s == NULL || json_string_length(v) != 2 * PC_PEER_ID_LEN ||
            pc_unhex(s, 2 * PC_PEER_ID_LEN, out->peer_id, PC_PEER_ID_LEN) != 0)
            return fail(err, "bad_field", "'peer_id' must be %d hex digits", 2 * PC_PEER_ID_LEN);
        *seen |= F_PEER_ID;
    } else if (strcmp(k, "key") == 0) {
        if (get_b64(v, "key", out->key, sizeof(out->key), 0, err) != 0)
            return PC_EPARSE;
        *seen |= F_KEY;
    } else if (strcmp(k, "addr") == 0) {
        const char *s = json_string_value(v);
        if (s == NULL || json_string_length(v) > 45 || pc_addr_parse(s, out->addr) != 0)
            return fail(err, "bad_field", "'addr' must be an IPv4 or IPv6 address");
        if (!pc_addr_dialable(out->addr))
            return fail(err, "bad_field", "'addr' must be an address other peers can dial: not unspecified (0.0.0.0, "
                                          "::), multicast or broadcast");
        out->has_addr = 1;
    } else if (strcmp(k, "port") == 0) {
        uint32_t p;
        if (get_u32(v, "port", 65535, &p, err) != 0 || p == 0)
            return fail(err, "bad_field", "'port' must be from 1 to 65535");
        out->port = (uint16_t)p;
        *seen |= F_PORT;
    } else if (strcmp(k, "video") == 0) {
        const char *s = json_string_value(v);
        if (s == NULL || !pc_video_id_valid(s, json_string_length(v)))
            return fail(err, "bad_field", "'video' must be 1 to %d characters of [A-Za-z0-9_-]", PC_VIDEO_ID_MAX);
        memcpy(out->video, s, json_string_length(v) + 1);
        *seen |= F_VIDEO;
    } else if (strcmp(k, "rendition") == 0) {
        if (get_token(v, "rendition", PC_REND_ID_MAX, REND_EXTRA, out->rendition, err) != 0)
            return PC_EPARSE;
        *seen |= F_REND;
    } else if (strcmp(k, "playhead_ms") == 0) {
        return get_u32(v, k, UINT32_MAX, &out->playhead_ms, err);
    } else if (strcmp(k, "need") == 0) {
        return get_u32(v, k, PC_SEGMENT_MAX - 1, &out->need, err);
    } else if (strcmp(k, "have") == 0) {
        return decode_have(v, out, err);
    } else if (strcmp(k, "banned") == 0) {
        return decode_banned(v, out, err);
    } else if (strcmp(k, "up_kbps") == 0) {
        return get_u32(v, k, 100000000, &out->up_kbps, err);
    } else if (strcmp(k, "region") == 0) {
        return get_token(v, "region", PC_REGION_MAX, PC_REGION_EXTRA, out->region, err);
    } else if (strcmp(k, "asn") == 0) {
        return get_u32(v, k, UINT32_MAX, &out->asn, err);
    } else if (strcmp(k, "event") == 0) {
        const char *s = json_string_value(v);
        if (s != NULL && strcmp(s, "started") == 0)
            out->event = PC_EV_STARTED;
        else if (s != NULL && strcmp(s, "periodic") == 0)
            out->event = PC_EV_PERIODIC;
        else if (s != NULL && strcmp(s, "stopped") == 0)
            out->event = PC_EV_STOPPED;
        else
            return fail(err, "bad_field", "'event' must be \"started\", \"periodic\" or \"stopped\"");
        *seen |= F_EVENT;
    } else if (strcmp(k, "numwant") == 0) {
        return get_u32(v, k, PC_NUMWANT_MAX, &out->numwant, err);
    } else if (strcmp(k, "seeding") == 0) {
        if (!json_is_boolean(v))
            return fail(err, "bad_field", "'seeding' must be true or false");
        out->seeding = json_is_true(v);
    } else if (strcmp(k, "counters") == 0) {
        return decode_counters(v, &out->counters, err);
    } else if (strcmp(k, "proof") == 0) {
        return decode_proof(v, out, err);
    } else if (strcmp(k, "ticket_expires") == 0) {
        return get_uint(v, k, UINT32_MAX, &out->ticket_expires, err);
    } else if (strcmp(k, "media") == 0) {
        /* checked against the media key by the tracker (pc_media_token_check), when it has one */
        const char *s = json_string_value(v);
        if (s == NULL || json_string_length(v) == 0 || json_string_length(v) > PC_MEDIA_TOKEN_MAX ||
            strlen(s) != json_string_length(v))
            return fail(err, "bad_field", "'media' must be the media URL query exp=E&sig=S (at most %d characters)",
                        PC_MEDIA_TOKEN_MAX);
        memcpy(out->media, s, json_string_length(v) + 1);
    } else if (strcmp(k, "session") == 0) {
        if (get_b64(v, "session", out->session, sizeof(out->session), 1, err) != 0)
            return PC_EPARSE;
        out->has_session = 1;
    } else {
        return fail(err, "unknown_field", "unknown field '%.64s'", k);
    }
    return 0;
}

int pc_announce_decode(const char *body, size_t len, pc_announce *out, pc_announce_error *err)
{
    memset(out, 0, sizeof(*out));
    out->need = out->have_lo = out->have_hi = PC_NONE;
    out->numwant = PC_NUMWANT_DEFAULT;
    if (len > PC_ANNOUNCE_MAX_BYTES) {
        err->code = "too_large";
        snprintf(err->message, sizeof(err->message), "an announce is at most %d bytes", PC_ANNOUNCE_MAX_BYTES);
        return PC_ETOOBIG;
    }
    json_t *root = NULL;
    char jerr[160];
    if (pc_json_parse_object(body, len, PC_ANNOUNCE_MAX_BYTES, &root, jerr, sizeof(jerr)) != 0)
        return fail(err, "bad_json", "the body is not a JSON object: %s", jerr);
    unsigned seen = 0;
    const char *k;
    json_t *v;
    int r = 0;
    json_object_foreach(root, k, v) {
        if ((r = decode_field(k, v, out, &seen, err)) != 0)
            break;
    }
    json_decref(root);
    if (r != 0)
        return PC_EPARSE;
    static const struct {
        unsigned bit;
        const char *name;
    } required[] = {{F_PEER_ID, "peer_id"}, {F_KEY, "key"},       {F_PORT, "port"},
                    {F_VIDEO, "video"},     {F_REND, "rendition"}, {F_EVENT, "event"}};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
        if (!(seen & required[i].bit))
            return fail(err, "missing_field", "'%s' is required", required[i].name);
    if (out->event == PC_EV_STARTED && !out->has_proof)
        return fail(err, "missing_field", "'proof' is required with event \"started\"");
    if (out->event != PC_EV_STARTED && !out->has_session)
        return fail(err, "missing_field", "'session' is required after \"started\"");
    return 0;
}
