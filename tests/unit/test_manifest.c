/* pc_manifest: p2p.json parsing with its limits, and verification of p2p.json.sig. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "media.h"
#include "pc_crypto.h"
#include "pc_manifest.h"

#define H_INIT_V "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define H_SEG_V0 "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"
#define H_SEG_V1 "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"
#define H_INIT_A "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
#define H_SEG_A0 "01718cec35cd3d796dd00020e0bfecb473ad23457d063b75eff29c0ffa2e58a9"
/* base64 of the bytes 0x01 .. 0x20 */
#define TRACKER_KEY "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="

static const char valid_text[] =
    "{\"version\":1,\"video\":\"k3j5abcdefghijklmnop\",\"renditions\":["
    "{\"id\":\"v0\",\"type\":\"video\",\"width\":416,\"height\":234,\"bandwidth\":145000,\"codecs\":\"avc1.64001f\","
    "\"init\":{\"url\":\"v0/init.mp4\",\"size\":812,\"blake2b\":\"" H_INIT_V "\"},"
    "\"segments\":[{\"url\":\"v0/0.m4s\",\"duration\":4.0,\"size\":50000,\"blake2b\":\"" H_SEG_V0 "\"},"
    "{\"url\":\"v0/1.m4s\",\"duration\":2.5,\"size\":30000,\"blake2b\":\"" H_SEG_V1 "\"}]},"
    "{\"id\":\"a0\",\"type\":\"audio\",\"bandwidth\":128000,\"codecs\":\"mp4a.40.2\","
    "\"init\":{\"url\":\"a0/init.mp4\",\"size\":640,\"blake2b\":\"" H_INIT_A "\"},"
    "\"segments\":[{\"url\":\"a0/0.m4s\",\"duration\":6.5,\"size\":104000,\"blake2b\":\"" H_SEG_A0 "\"}]}],"
    "\"tracker\":{\"url\":\"wss://tracker.example/announce\",\"ed25519\":\"" TRACKER_KEY "\"}}";

/* ---- helpers ---- */

static json_t *load_valid(void)
{
    json_t *root = json_loads(valid_text, 0, NULL);
    assert_non_null(root);
    return root;
}

static json_t *rendition(json_t *root, size_t i)
{
    json_t *r = json_array_get(json_object_get(root, "renditions"), i);
    assert_non_null(r);
    return r;
}

static json_t *segment(json_t *root, size_t r, size_t s)
{
    json_t *o = json_array_get(json_object_get(rendition(root, r), "segments"), s);
    assert_non_null(o);
    return o;
}

/* Serialises |root| (consumed), parses it, frees any result; returns the parse status. */
static int parse_json(json_t *root)
{
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    assert_non_null(s);
    pc_manifest *m = (pc_manifest *)1;
    int r = pc_manifest_parse(s, strlen(s), &m);
    free(s);
    if (r == 0) {
        assert_non_null(m);
        pc_manifest_free(m);
    } else {
        assert_null(m);
    }
    return r;
}

static void expect_hash(const uint8_t h[PC_B2_LEN], const char *hex)
{
    char got[2 * PC_B2_LEN + 1];
    pc_hex(h, PC_B2_LEN, got);
    assert_string_equal(got, hex);
}

/* ---- parsing ---- */

static void parse_valid_manifest(void **state)
{
    (void)state;
    pc_manifest *m = NULL;
    assert_int_equal(pc_manifest_parse(valid_text, strlen(valid_text), &m), 0);
    assert_non_null(m);
    assert_string_equal(m->video, "k3j5abcdefghijklmnop");
    assert_int_equal(m->nrenditions, 2);

    const pc_mf_rendition *v = &m->renditions[0];
    assert_string_equal(v->id, "v0");
    assert_int_equal(v->audio, 0);
    assert_int_equal(v->width, 416);
    assert_int_equal(v->height, 234);
    assert_int_equal(v->bandwidth, 145000);
    assert_string_equal(v->codecs, "avc1.64001f");
    assert_string_equal(v->init.url, "v0/init.mp4");
    assert_int_equal(v->init.size, 812);
    assert_true(v->init.duration == 0.0);
    expect_hash(v->init.blake2b, H_INIT_V);
    assert_int_equal(v->nsegments, 2);
    assert_string_equal(v->segments[0].url, "v0/0.m4s");
    assert_true(v->segments[0].duration == 4.0);
    assert_int_equal(v->segments[0].size, 50000);
    expect_hash(v->segments[0].blake2b, H_SEG_V0);
    assert_string_equal(v->segments[1].url, "v0/1.m4s");
    assert_true(v->segments[1].duration == 2.5);
    assert_int_equal(v->segments[1].size, 30000);
    expect_hash(v->segments[1].blake2b, H_SEG_V1);

    const pc_mf_rendition *a = &m->renditions[1];
    assert_string_equal(a->id, "a0");
    assert_int_equal(a->audio, 1);
    assert_int_equal(a->bandwidth, 128000);
    assert_string_equal(a->codecs, "mp4a.40.2");
    assert_string_equal(a->init.url, "a0/init.mp4");
    assert_int_equal(a->init.size, 640);
    expect_hash(a->init.blake2b, H_INIT_A);
    assert_int_equal(a->nsegments, 1);
    assert_true(a->segments[0].duration == 6.5);
    assert_int_equal(a->segments[0].size, 104000);
    expect_hash(a->segments[0].blake2b, H_SEG_A0);

    assert_int_equal(m->has_tracker, 1);
    assert_string_equal(m->tracker_url, "wss://tracker.example/announce");
    for (int i = 0; i < PC_ED25519_PK_LEN; i++)
        assert_int_equal(m->tracker_pk[i], i + 1);
    pc_manifest_free(m);
    pc_manifest_free(NULL); /* harmless */
}

/* Serialises |root| (consumed) and parses it, which must succeed; the caller frees the result. */
static pc_manifest *parse_ok(json_t *root)
{
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    assert_non_null(s);
    pc_manifest *m = NULL;
    assert_int_equal(pc_manifest_parse(s, strlen(s), &m), 0);
    free(s);
    return m;
}

static void tracker_is_optional(void **state)
{
    (void)state;
    json_t *root = load_valid();
    json_object_del(root, "tracker");
    pc_manifest *m = parse_ok(root);
    assert_int_equal(m->has_tracker, 0);
    assert_null(m->tracker_url);
    assert_int_equal(m->nrenditions, 2);
    pc_manifest_free(m);
}

/* A subtitle track: {id, language, name, file: {url, size, blake2b}}. */
static json_t *subtitle(const char *id, const char *url, json_int_t size)
{
    return json_pack("{s:s, s:s, s:s, s:{s:s, s:I, s:s}}", "id", id, "language", "en", "name", "English", "file", "url", url,
                     "size", size, "blake2b", H_INIT_V);
}

static void subtitles_are_optional_and_checked(void **state)
{
    (void)state;
    json_t *root = load_valid();
    json_object_set_new(root, "subtitles", json_pack("[o, o]", subtitle("s0", "s0/all.vtt", 1200),
                                                     subtitle("s1", "s1/all.vtt", PC_MANIFEST_MAX_SUBTITLE_BYTES)));
    pc_manifest *m = parse_ok(root);
    assert_int_equal(m->nsubtitles, 2);
    assert_string_equal(m->subtitles[1].id, "s1");
    assert_string_equal(m->subtitles[0].file.url, "s0/all.vtt");
    assert_int_equal(m->subtitles[0].file.size, 1200);
    expect_hash(m->subtitles[0].file.blake2b, H_INIT_V);
    pc_manifest_free(m);
    /* a bad track is a bad manifest: its id, its file outside its directory, a size past the limit */
    const struct {
        const char *id, *url;
        json_int_t size;
        int want;
    } bad[] = {
        {"S0", "S0/all.vtt", 10, PC_EPARSE},      {"", "/all.vtt", 10, PC_EPARSE},
        {"s0", "s1/all.vtt", 10, PC_EPARSE},      {"s0", "s0all.vtt", 10, PC_EPARSE},
        {"s0", "../s0/all.vtt", 10, PC_EPARSE},   {"s0", "s0/all.vtt", 0, PC_EPARSE},
        {"s0", "s0/all.vtt", (json_int_t)PC_MANIFEST_MAX_SUBTITLE_BYTES + 1, PC_ETOOBIG},
        {"s0123456789abcdef", "s0123456789abcdef/a.vtt", 10, PC_EPARSE},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        root = load_valid();
        json_object_set_new(root, "subtitles", json_pack("[o]", subtitle(bad[i].id, bad[i].url, bad[i].size)));
        assert_int_equal(parse_json(root), bad[i].want);
    }
    root = load_valid();
    json_object_set_new(root, "subtitles", json_string("s0"));
    assert_int_equal(parse_json(root), PC_EPARSE);
    /* at most PC_MANIFEST_MAX_SUBTITLES tracks */
    for (int n = PC_MANIFEST_MAX_SUBTITLES; n <= PC_MANIFEST_MAX_SUBTITLES + 1; n++) {
        root = load_valid();
        json_t *arr = json_array();
        for (int k = 0; k < n; k++) {
            char id[8], url[32];
            snprintf(id, sizeof(id), "s%d", k);
            snprintf(url, sizeof(url), "s%d/all.vtt", k);
            json_array_append_new(arr, subtitle(id, url, 10));
        }
        json_object_set_new(root, "subtitles", arr);
        assert_int_equal(parse_json(root), n > PC_MANIFEST_MAX_SUBTITLES ? PC_ETOOBIG : 0);
    }
}

static void rejects_wrong_version(void **state)
{
    (void)state;
    json_t *root = load_valid();
    json_object_set_new(root, "version", json_integer(2));
    assert_int_equal(parse_json(root), PC_EPARSE);
    root = load_valid();
    json_object_set_new(root, "version", json_integer(0));
    assert_int_equal(parse_json(root), PC_EPARSE);
    root = load_valid();
    json_object_set_new(root, "version", json_string("1"));
    assert_int_equal(parse_json(root), PC_EPARSE);
    root = load_valid();
    json_object_del(root, "version");
    assert_int_equal(parse_json(root), PC_EPARSE);
}

static void rejects_missing_or_empty_renditions(void **state)
{
    (void)state;
    json_t *root = load_valid();
    json_object_del(root, "renditions");
    assert_int_equal(parse_json(root), PC_EPARSE);
    root = load_valid();
    json_object_set_new(root, "renditions", json_array());
    assert_int_equal(parse_json(root), PC_EPARSE);
    root = load_valid();
    json_object_set_new(root, "renditions", json_object());
    assert_int_equal(parse_json(root), PC_EPARSE);
    root = load_valid();
    json_object_del(root, "video");
    assert_int_equal(parse_json(root), PC_EPARSE);
    root = load_valid();
    json_array_clear(json_object_get(rendition(root, 0), "segments"));
    assert_int_equal(parse_json(root), PC_EPARSE);
    root = load_valid();
    json_object_del(rendition(root, 1), "init");
    assert_int_equal(parse_json(root), PC_EPARSE);
}

static void rejects_bad_hashes(void **state)
{
    (void)state;
    static const char *const bad[] = {
        H_SEG_V0 "0",                                                        /* 65 digits */
        "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a",  /* 63 */
        "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3az", /* non-hex */
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *root = load_valid();
        json_object_set_new(segment(root, 0, 1), "blake2b", json_string(bad[i]));
        assert_int_equal(parse_json(root), PC_EPARSE);
        root = load_valid();
        json_object_set_new(json_object_get(rendition(root, 1), "init"), "blake2b", json_string(bad[i]));
        assert_int_equal(parse_json(root), PC_EPARSE);
    }
    json_t *root = load_valid();
    json_object_set_new(segment(root, 0, 0), "blake2b", json_integer(5));
    assert_int_equal(parse_json(root), PC_EPARSE);
}

static void rejects_unsafe_urls(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "v0/../../etc/passwd", "..", "v0/..", "/v0/0.m4s", "/", "http://evil.example/0.m4s", "file:///etc/passwd",
        "", "v0/0.m4s?x=1", "v0/0 1.m4s", "v0\\0.m4s",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *root = load_valid();
        json_object_set_new(segment(root, 0, 0), "url", json_string(bad[i]));
        assert_int_equal(parse_json(root), PC_EPARSE);
        root = load_valid();
        json_object_set_new(json_object_get(rendition(root, 0), "init"), "url", json_string(bad[i]));
        assert_int_equal(parse_json(root), PC_EPARSE);
    }
}

static void url_length_limit_is_exact(void **state)
{
    (void)state;
    char url[PC_MANIFEST_MAX_URL + 2];
    memset(url, 'a', sizeof(url));
    url[PC_MANIFEST_MAX_URL] = '\0';
    json_t *root = load_valid();
    json_object_set_new(segment(root, 0, 0), "url", json_string(url));
    assert_int_equal(parse_json(root), 0);
    url[PC_MANIFEST_MAX_URL] = 'a';
    url[PC_MANIFEST_MAX_URL + 1] = '\0';
    root = load_valid();
    json_object_set_new(segment(root, 0, 0), "url", json_string(url));
    assert_int_equal(parse_json(root), PC_EPARSE);
}

static void segment_size_limit_is_exact(void **state)
{
    (void)state;
    json_t *root = load_valid();
    json_object_set_new(segment(root, 0, 1), "size", json_integer(PC_MANIFEST_MAX_SEGMENT_BYTES));
    assert_int_equal(parse_json(root), 0);
    root = load_valid();
    json_object_set_new(segment(root, 0, 1), "size", json_integer((json_int_t)PC_MANIFEST_MAX_SEGMENT_BYTES + 1));
    assert_int_equal(parse_json(root), PC_ETOOBIG);
    root = load_valid();
    json_object_set_new(json_object_get(rendition(root, 0), "init"), "size",
                        json_integer((json_int_t)PC_MANIFEST_MAX_SEGMENT_BYTES + 1));
    assert_int_equal(parse_json(root), PC_ETOOBIG);
    root = load_valid();
    json_object_set_new(segment(root, 0, 1), "size", json_integer(1));
    assert_int_equal(parse_json(root), 0);
    root = load_valid();
    json_object_set_new(segment(root, 0, 1), "size", json_real(100.0));
    assert_int_equal(parse_json(root), PC_EPARSE);
}

/* A size of 0 or below is a malformed document (EPARSE), not an over-limit one. */
static void size_zero_or_negative_is_malformed(void **state)
{
    (void)state;
    json_t *root = load_valid();
    json_object_set_new(segment(root, 0, 1), "size", json_integer(0));
    assert_int_equal(parse_json(root), PC_EPARSE);
    root = load_valid();
    json_object_set_new(json_object_get(rendition(root, 0), "init"), "size", json_integer(-5));
    assert_int_equal(parse_json(root), PC_EPARSE);
}

static void rejects_bad_durations(void **state)
{
    (void)state;
    json_t *root = load_valid();
    json_object_set_new(segment(root, 0, 0), "duration", json_real(0.0));
    assert_int_equal(parse_json(root), PC_EPARSE);
    root = load_valid();
    json_object_set_new(segment(root, 0, 0), "duration", json_real(-1.0));
    assert_int_equal(parse_json(root), PC_EPARSE);
    root = load_valid();
    json_object_del(segment(root, 1, 0), "duration");
    assert_int_equal(parse_json(root), PC_EPARSE);
    root = load_valid();
    json_object_set_new(segment(root, 0, 0), "duration", json_integer(4)); /* an integer is a number */
    assert_int_equal(parse_json(root), 0);
}

static void rendition_count_limit_is_exact(void **state)
{
    (void)state;
    json_t *root = load_valid();
    json_t *rs = json_object_get(root, "renditions");
    while (json_array_size(rs) < PC_MANIFEST_MAX_RENDITIONS)
        json_array_append_new(rs, json_deep_copy(json_array_get(rs, 0)));
    json_t *copy = json_deep_copy(root);
    assert_int_equal(parse_json(root), 0);
    rs = json_object_get(copy, "renditions");
    json_array_append_new(rs, json_deep_copy(json_array_get(rs, 0)));
    assert_int_equal(json_array_size(rs), PC_MANIFEST_MAX_RENDITIONS + 1);
    assert_int_equal(parse_json(copy), PC_ETOOBIG);
}

static void segment_count_limit_is_exact(void **state)
{
    (void)state;
    json_t *root = load_valid();
    json_t *segs = json_object_get(rendition(root, 1), "segments");
    json_t *proto = json_array_get(segs, 0);
    while (json_array_size(segs) < PC_MANIFEST_MAX_SEGMENTS)
        json_array_append(segs, proto);
    json_incref(root);
    assert_int_equal(parse_json(root), 0);
    json_array_append(segs, proto);
    assert_int_equal(parse_json(root), PC_ETOOBIG);
}

static void text_length_limit_is_exact(void **state)
{
    (void)state;
    size_t n = strlen(valid_text);
    char *big = malloc(PC_MANIFEST_MAX_BYTES + 1);
    assert_non_null(big);
    memcpy(big, valid_text, n);
    memset(big + n, ' ', PC_MANIFEST_MAX_BYTES + 1 - n); /* trailing whitespace is valid JSON */
    pc_manifest *m = NULL;
    assert_int_equal(pc_manifest_parse(big, PC_MANIFEST_MAX_BYTES, &m), 0);
    assert_int_equal(m->nrenditions, 2);
    pc_manifest_free(m);
    m = (pc_manifest *)1;
    assert_int_equal(pc_manifest_parse(big, PC_MANIFEST_MAX_BYTES + 1, &m), PC_ETOOBIG);
    assert_null(m);
    free(big);
}

static void rejects_tracker_key_of_wrong_size(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHw==",     /* 31 bytes */
        "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAh",     /* 33 bytes */
        "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA",      /* 32 bytes, padding missing */
        "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHy!=",     /* not base64 */
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *root = load_valid();
        json_object_set_new(json_object_get(root, "tracker"), "ed25519", json_string(bad[i]));
        assert_int_equal(parse_json(root), PC_EPARSE);
    }
    json_t *root = load_valid();
    json_object_del(json_object_get(root, "tracker"), "url");
    assert_int_equal(parse_json(root), PC_EPARSE);
}

static void rejects_malformed_documents(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "{", "[]", "null", "{\"version\":1,\"version\":1}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pc_manifest *m = (pc_manifest *)1;
        assert_int_equal(pc_manifest_parse(bad[i], strlen(bad[i]), &m), PC_EPARSE);
        assert_null(m);
    }
    /* the valid document cut short */
    pc_manifest *m = (pc_manifest *)1;
    assert_int_equal(pc_manifest_parse(valid_text, strlen(valid_text) - 1, &m), PC_EPARSE);
    assert_null(m);
}

/* ---- signatures ---- */

typedef struct signed_doc {
    uint8_t pk[PC_ED25519_PK_LEN], sk[PC_ED25519_SK_LEN];
    char sig_b64[128];
    size_t sig_len;
} signed_doc;

static void sign_valid_text(signed_doc *d)
{
    crypto_sign_keypair(d->pk, d->sk);
    uint8_t sig[PC_ED25519_SIG_LEN];
    pc_ed25519_sign(d->sk, valid_text, strlen(valid_text), sig);
    d->sig_len = pc_b64_encode(sig, sizeof(sig), d->sig_b64, 0);
    assert_int_equal(d->sig_len, 88);
}

static void verify_accepts_the_exact_bytes(void **state)
{
    (void)state;
    signed_doc d;
    sign_valid_text(&d);
    size_t n = strlen(valid_text);
    assert_int_equal(pc_manifest_verify(d.pk, valid_text, n, d.sig_b64, d.sig_len), 0);
    /* p2p.json.sig as written by tools usually ends in a newline */
    char with_nl[130];
    memcpy(with_nl, d.sig_b64, d.sig_len);
    memcpy(with_nl + d.sig_len, "\n", 2);
    assert_int_equal(pc_manifest_verify(d.pk, valid_text, n, with_nl, d.sig_len + 1), 0);
    memcpy(with_nl + d.sig_len, "\r\n", 3);
    assert_int_equal(pc_manifest_verify(d.pk, valid_text, n, with_nl, d.sig_len + 2), 0);
}

static void verify_rejects_modified_bytes_and_other_keys(void **state)
{
    (void)state;
    signed_doc d;
    sign_valid_text(&d);
    size_t n = strlen(valid_text);
    char *copy = malloc(n + 2);
    assert_non_null(copy);
    memcpy(copy, valid_text, n + 1);
    /* one byte changed: 4.0 s becomes 5.0 s */
    char *p = strstr(copy, "4.0");
    assert_non_null(p);
    *p = '5';
    assert_int_equal(pc_manifest_verify(d.pk, copy, n, d.sig_b64, d.sig_len), PC_EBADSIG);
    *p = '4';
    assert_int_equal(pc_manifest_verify(d.pk, copy, n, d.sig_b64, d.sig_len), 0);
    /* same JSON meaning, different bytes */
    copy[n] = ' ';
    copy[n + 1] = '\0';
    assert_int_equal(pc_manifest_verify(d.pk, copy, n + 1, d.sig_b64, d.sig_len), PC_EBADSIG);
    assert_int_equal(pc_manifest_verify(d.pk, copy, n - 1, d.sig_b64, d.sig_len), PC_EBADSIG);
    free(copy);
    /* another origin's key */
    signed_doc other;
    sign_valid_text(&other);
    assert_int_equal(pc_manifest_verify(other.pk, valid_text, n, d.sig_b64, d.sig_len), PC_EBADSIG);
}

static void verify_rejects_garbage_signatures(void **state)
{
    (void)state;
    signed_doc d;
    sign_valid_text(&d);
    size_t n = strlen(valid_text);
    assert_int_equal(pc_manifest_verify(d.pk, valid_text, n, "not a signature", 15), PC_EPARSE);
    assert_int_equal(pc_manifest_verify(d.pk, valid_text, n, "", 0), PC_EPARSE);
    assert_int_equal(pc_manifest_verify(d.pk, valid_text, n, "\n", 1), PC_EPARSE);
    /* base64 of 63 bytes: decodes, but is not a signature */
    uint8_t short_sig[63] = {0};
    char enc[128];
    size_t el = pc_b64_encode(short_sig, sizeof(short_sig), enc, 0);
    assert_int_equal(pc_manifest_verify(d.pk, valid_text, n, enc, el), PC_EPARSE);
    /* the real signature with a character dropped or junk appended */
    assert_int_equal(pc_manifest_verify(d.pk, valid_text, n, d.sig_b64, d.sig_len - 3), PC_EPARSE);
    char junk[130];
    memcpy(junk, d.sig_b64, d.sig_len);
    memcpy(junk + d.sig_len, "AAAA", 5);
    assert_int_equal(pc_manifest_verify(d.pk, valid_text, n, junk, d.sig_len + 4), PC_EPARSE);
}

static int group_setup(void **state)
{
    (void)state;
    return pc_crypto_init() == 0 ? 0 : -1;
}

/* The peer's composite view carries one audio track: a manifest with a second one is refused (its
 * segment URLs were once served from the first track's data, or read past the end). */
static void the_composite_refuses_a_second_audio_track(void **state)
{
    (void)state;
    json_t *root = load_valid();
    json_array_remove(json_object_get(rendition(root, 0), "segments"), 1); /* video and audio: one segment */
    for (int two = 0; two <= 1; two++) {
        if (two) {
            json_t *a1 = json_deep_copy(rendition(root, 1));
            json_object_set_new(a1, "id", json_string("a1"));
            json_object_set_new(json_object_get(a1, "init"), "url", json_string("a1/init.mp4"));
            json_object_set_new(json_array_get(json_object_get(a1, "segments"), 0), "url", json_string("a1/0.m4s"));
            json_array_append_new(json_object_get(root, "renditions"), a1);
        }
        char *text = json_dumps(root, JSON_COMPACT);
        assert_non_null(text);
        pc_manifest *m = NULL;
        assert_int_equal(pc_manifest_parse(text, strlen(text), &m), 0);
        free(text);
        pc_peer_media pm;
        const char *why = NULL;
        int rc = pc_peer_media_init(&pm, m, &why);
        if (two) {
            assert_int_equal(rc, PC_EINVAL);
            assert_string_equal(why, "the manifest has more than one audio rendition");
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(pm.audio, 1);
            pc_peer_media_clear(&pm);
        }
        pc_manifest_free(m);
    }
    json_decref(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_valid_manifest),
        cmocka_unit_test(tracker_is_optional),
        cmocka_unit_test(subtitles_are_optional_and_checked),
        cmocka_unit_test(rejects_wrong_version),
        cmocka_unit_test(rejects_missing_or_empty_renditions),
        cmocka_unit_test(rejects_bad_hashes),
        cmocka_unit_test(rejects_unsafe_urls),
        cmocka_unit_test(url_length_limit_is_exact),
        cmocka_unit_test(segment_size_limit_is_exact),
        cmocka_unit_test(size_zero_or_negative_is_malformed),
        cmocka_unit_test(rejects_bad_durations),
        cmocka_unit_test(rendition_count_limit_is_exact),
        cmocka_unit_test(segment_count_limit_is_exact),
        cmocka_unit_test(text_length_limit_is_exact),
        cmocka_unit_test(rejects_tracker_key_of_wrong_size),
        cmocka_unit_test(rejects_malformed_documents),
        cmocka_unit_test(verify_accepts_the_exact_bytes),
        cmocka_unit_test(verify_rejects_modified_bytes_and_other_keys),
        cmocka_unit_test(verify_rejects_garbage_signatures),
        cmocka_unit_test(the_composite_refuses_a_second_audio_track),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
