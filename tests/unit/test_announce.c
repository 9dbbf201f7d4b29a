/* Announce codec: every field checked, unknown ones refused, limits stated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "announce.h"

#define KEY "\"key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\""
#define ID "\"peer_id\":\"000102030405060708090a0b0c0d0e0f\""
#define SESSION "\"session\":\"AAECAwQFBgcICQoLDA0ODw\""
#define BASE ID "," KEY ",\"port\":4000,\"video\":\"vid_1\",\"rendition\":\"v2\""
#define K1 "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\""
#define K9 K1 "," K1 "," K1 "," K1 "," K1 "," K1 "," K1 "," K1 "," K1

static int decode(const char *json, pc_announce *a, pc_announce_error *err)
{
    return pc_announce_decode(json, strlen(json), a, err);
}

static void full_periodic_announce(void **state)
{
    (void)state;
    const char *j = "{" BASE ",\"event\":\"periodic\"," SESSION ",\"addr\":\"192.0.2.7\",\"playhead_ms\":61000,"
                    "\"need\":16,\"have\":[[0,3],[10,15],[5,6]],\"up_kbps\":2500,\"region\":\"eu-west\",\"asn\":64500,"
                    "\"numwant\":30,\"seeding\":false,\"counters\":{\"bytes_cdn\":1,\"bytes_p2p\":2,\"bytes_up\":3,"
                    "\"stalls\":4,\"stall_ms\":5,\"startup_ms\":6,\"played_ms\":7}}";
    pc_announce a;
    pc_announce_error e;
    assert_int_equal(decode(j, &a, &e), 0);
    assert_int_equal(a.peer_id[15], 15);
    assert_int_equal(a.key[31], 31);
    assert_int_equal(a.port, 4000);
    assert_string_equal(a.video, "vid_1");
    assert_string_equal(a.rendition, "v2");
    assert_int_equal(a.event, PC_EV_PERIODIC);
    assert_int_equal(a.has_addr, 1);
    char addr[46];
    pc_addr_format(a.addr, addr);
    assert_string_equal(addr, "192.0.2.7");
    assert_int_equal(a.playhead_ms, 61000);
    assert_int_equal(a.need, 16);
    assert_int_equal(a.have_lo, 10); /* the run reaching furthest */
    assert_int_equal(a.have_hi, 15);
    assert_int_equal(a.up_kbps, 2500);
    assert_string_equal(a.region, "eu-west");
    assert_int_equal(a.asn, 64500);
    assert_int_equal(a.numwant, 30);
    assert_int_equal(a.counters.bytes_up, 3);
    assert_int_equal(a.counters.played_ms, 7);
    assert_int_equal(a.has_session, 1);
    assert_int_equal(a.session[15], 15);
    assert_int_equal(a.nbanned, 0);
    /* keys the peer banned since its last announce */
    const char *jb = "{" BASE ",\"event\":\"periodic\"," SESSION ",\"banned\":[" K1 "," K1 "]}";
    assert_int_equal(decode(jb, &a, &e), 0);
    assert_int_equal(a.nbanned, 2);
    assert_int_equal(a.banned[1][31], 31);
}

static void defaults_for_optional_fields(void **state)
{
    (void)state;
    pc_announce a;
    pc_announce_error e;
    assert_int_equal(decode("{" BASE ",\"event\":\"stopped\"," SESSION "}", &a, &e), 0);
    assert_int_equal(a.has_addr, 0);
    assert_int_equal(a.need, PC_NONE);
    assert_int_equal(a.have_hi, PC_NONE);
    assert_int_equal(a.numwant, PC_NUMWANT_DEFAULT);
    assert_string_equal(a.region, "");
}

struct bad {
    const char *json;
    const char *code;
};

static void bad_inputs_name_the_problem(void **state)
{
    (void)state;
    static const struct bad cases[] = {
        {"", "bad_json"},
        {"[1,2]", "bad_json"},
        {"{\"peer_id\":", "bad_json"},
        {"{" BASE ",\"event\":\"periodic\"," SESSION ",\"bogus\":1}", "unknown_field"},
        {"{" BASE ",\"event\":\"periodic\"," SESSION ",\"counters\":{\"bytes_x\":1}}", "unknown_field"},
        {"{" KEY ",\"port\":1,\"video\":\"v\",\"rendition\":\"r\",\"event\":\"periodic\"," SESSION "}", "missing_field"},
        {"{" BASE ",\"event\":\"started\"}", "missing_field"},  /* started needs a proof */
        {"{" BASE ",\"event\":\"periodic\"}", "missing_field"}, /* later ones a session */
        {"{" BASE ",\"event\":\"paused\"," SESSION "}", "bad_field"},
        {"{" ID ",\"key\":\"AAEC\",\"port\":1,\"video\":\"v\",\"rendition\":\"r\",\"event\":\"periodic\"," SESSION "}",
         "bad_field"},
        {"{" ID "," KEY ",\"port\":0,\"video\":\"v\",\"rendition\":\"r\",\"event\":\"periodic\"," SESSION "}",
         "bad_field"},
        {"{" ID "," KEY ",\"port\":70000,\"video\":\"v\",\"rendition\":\"r\",\"event\":\"periodic\"," SESSION "}",
         "bad_field"},
        {"{" ID "," KEY ",\"port\":1,\"video\":\"../etc\",\"rendition\":\"r\",\"event\":\"periodic\"," SESSION "}",
         "bad_field"},
        {"{" ID "," KEY ",\"port\":1,\"video\":\"v\",\"rendition\":\"r\\u0000x\",\"event\":\"periodic\"," SESSION "}",
         "bad_json"}, /* jansson refuses NUL in strings */
        {"{" BASE ",\"event\":\"periodic\"," SESSION ",\"playhead_ms\":-1}", "bad_field"},
        {"{" BASE ",\"event\":\"periodic\"," SESSION ",\"playhead_ms\":1.5}", "bad_field"},
        {"{" BASE ",\"event\":\"periodic\"," SESSION ",\"have\":[[5,4]]}", "bad_field"},
        {"{" BASE ",\"event\":\"periodic\"," SESSION ",\"have\":[[1]]}", "bad_field"},
        {"{" BASE ",\"event\":\"periodic\"," SESSION ",\"have\":[[0,1000000]]}", "bad_field"},
        {"{" BASE ",\"event\":\"periodic\"," SESSION ",\"numwant\":51}", "bad_field"},
        {"{" BASE ",\"event\":\"periodic\"," SESSION ",\"addr\":\"300.1.1.1\"}", "bad_field"},
        {"{" BASE ",\"event\":\"periodic\"," SESSION ",\"counters\":{\"stalls\":4294967296}}", "bad_field"},
        {"{" BASE ",\"event\":\"periodic\"," SESSION ",\"counters\":{\"bytes_cdn\":9007199254740993}}", "bad_field"},
        {"{" BASE ",\"event\":\"periodic\",\"session\":\"short\"}", "bad_field"},
        {"{" BASE ",\"event\":\"started\",\"proof\":{\"ts\":1}}", "bad_field"},
        {"{" BASE ",\"event\":\"periodic\"," SESSION ",\"seeding\":1}", "bad_field"},
        {"{" BASE ",\"event\":\"periodic\"," SESSION ",\"banned\":\"x\"}", "bad_field"},
        {"{" BASE ",\"event\":\"periodic\"," SESSION ",\"banned\":[\"AAEC\"]}", "bad_field"},
        {"{" BASE ",\"event\":\"periodic\"," SESSION ",\"banned\":[1]}", "bad_field"},
        {"{" BASE ",\"event\":\"periodic\"," SESSION ",\"banned\":[" K9 "]}", "bad_field"}, /* nine */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pc_announce a;
        pc_announce_error e;
        int r = decode(cases[i].json, &a, &e);
        if (r != PC_EPARSE || strcmp(e.code, cases[i].code) != 0)
            fail_msg("case %zu (%s): got %d %s: %s", i, cases[i].json, r, r ? e.code : "", r ? e.message : "");
        assert_true(strlen(e.message) > 0);
    }
}

static void oversized_body_is_refused_before_parsing(void **state)
{
    (void)state;
    size_t n = PC_ANNOUNCE_MAX_BYTES + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    pc_announce a;
    pc_announce_error e;
    assert_int_equal(pc_announce_decode(big, n, &a, &e), PC_ETOOBIG);
    assert_string_equal(e.code, "too_large");
    free(big);
}

static void addresses_round_trip(void **state)
{
    (void)state;
    uint8_t a[16];
    char s[46];
    assert_int_equal(pc_addr_parse("2001:db8::1", a), 0);
    pc_addr_format(a, s);
    assert_string_equal(s, "2001:db8::1");
    assert_int_equal(pc_addr_parse("10.1.2.3", a), 0);
    pc_addr_format(a, s);
    assert_string_equal(s, "10.1.2.3");
    assert_int_equal(pc_addr_parse("nope", a), PC_EPARSE);
}

static void addresses_other_hosts_cannot_dial_are_told_apart(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int dialable, loopback;
    } cases[] = {
        {"0.0.0.0", 0, 0},          {"::", 0, 0},          {"::ffff:0.0.0.0", 0, 0}, {"224.0.0.1", 0, 0},
        {"239.255.255.250", 0, 0},  {"255.255.255.255", 0, 0}, {"ff02::1", 0, 0},    {"127.0.0.1", 1, 1},
        {"127.3.4.5", 1, 1},        {"::1", 1, 1},         {"::ffff:127.0.0.1", 1, 1}, {"10.0.0.1", 1, 0},
        {"223.255.255.255", 1, 0},  {"240.0.0.1", 1, 0},   {"2001:db8::1", 1, 0},   {"::2", 1, 0},
        {"128.0.0.1", 1, 0},        {"fe80::1", 1, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t a[16];
        assert_int_equal(pc_addr_parse(cases[i].s, a), 0);
        if (pc_addr_dialable(a) != cases[i].dialable || pc_addr_loopback(a) != cases[i].loopback)
            fail_msg("%s: dialable %d loopback %d", cases[i].s, pc_addr_dialable(a), pc_addr_loopback(a));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_periodic_announce),
        cmocka_unit_test(defaults_for_optional_fields),
        cmocka_unit_test(bad_inputs_name_the_problem),
        cmocka_unit_test(oversized_body_is_refused_before_parsing),
        cmocka_unit_test(addresses_round_trip),
        cmocka_unit_test(addresses_other_hosts_cannot_dial_are_told_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
