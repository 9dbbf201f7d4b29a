/* pc_ticket: tickets bind a key to a video until an exact second; proofs hold within a window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pc_media_token.h"
#include "pc_ticket.h"

static uint8_t tpk[32], tsk[64], ppk[32], psk[64];

static int setup(void **state)
{
    (void)state;
    assert_int_equal(pc_crypto_init(), 0);
    crypto_sign_keypair(tpk, tsk);
    crypto_sign_keypair(ppk, psk);
    return 0;
}

static int make(const char *video, uint64_t expires, uint8_t out[PC_TICKET_MAX])
{
    pc_ticket t;
    memcpy(t.key, ppk, 32);
    strcpy(t.video, video);
    t.expires = expires;
    return pc_ticket_sign(tsk, &t, out);
}

static void valid_ticket_opens_and_checks(void **state)
{
    (void)state;
    uint8_t b[PC_TICKET_MAX];
    int n = make("video-1", 1000, b);
    assert_int_equal(n, 4 + 8 + 32 + 1 + 7 + 64);
    pc_ticket t;
    assert_int_equal(pc_ticket_check(tpk, b, (size_t)n, "video-1", ppk, 999, &t), 0);
    assert_int_equal(t.expires, 1000);
    assert_string_equal(t.video, "video-1");
    assert_memory_equal(t.key, ppk, 32);
}

static void expiry_is_exact(void **state)
{
    (void)state;
    uint8_t b[PC_TICKET_MAX];
    int n = make("v", 1000, b);
    assert_int_equal(pc_ticket_check(tpk, b, (size_t)n, "v", ppk, 999, NULL), 0);  /* one second before */
    assert_int_equal(pc_ticket_check(tpk, b, (size_t)n, "v", ppk, 1000, NULL), PC_EEXPIRED); /* at the tick */
    assert_int_equal(pc_ticket_expires_of(b, (size_t)n), 1000); /* read from the bytes, as the links do */
    assert_int_equal(pc_ticket_expires_of(b, 11), 0);
}

static void forged_tickets_fail(void **state)
{
    (void)state;
    uint8_t b[PC_TICKET_MAX];
    int n = make("v", 1000, b);
    for (int i = 0; i < n; i++) { /* any flipped bit breaks it */
        b[i] ^= 0x01;
        int r = pc_ticket_check(tpk, b, (size_t)n, "v", ppk, 0, NULL);
        assert_true(r == PC_EBADSIG || r == PC_EPARSE);
        b[i] ^= 0x01;
    }
    uint8_t other_pk[32], other_sk[64];
    crypto_sign_keypair(other_pk, other_sk);
    assert_int_equal(pc_ticket_check(other_pk, b, (size_t)n, "v", ppk, 0, NULL), PC_EBADSIG); /* another tracker */
    /* a later expiry spliced in */
    b[11] = 0xff;
    assert_int_equal(pc_ticket_check(tpk, b, (size_t)n, "v", ppk, 0, NULL), PC_EBADSIG);
}

static void wrong_video_or_key_fails(void **state)
{
    (void)state;
    uint8_t b[PC_TICKET_MAX];
    int n = make("video-1", 1000, b);
    assert_int_equal(pc_ticket_check(tpk, b, (size_t)n, "video-2", ppk, 0, NULL), PC_EWRONGVIDEO);
    assert_int_equal(pc_ticket_check(tpk, b, (size_t)n, "video-", ppk, 0, NULL), PC_EWRONGVIDEO);
    uint8_t other[32];
    memcpy(other, ppk, 32);
    other[0] ^= 1;
    assert_int_equal(pc_ticket_check(tpk, b, (size_t)n, "video-1", other, 0, NULL), PC_EWRONGKEY);
}

static void malformed_lengths_fail(void **state)
{
    (void)state;
    uint8_t b[PC_TICKET_MAX + 8];
    int n = make("video-1", 1000, b);
    pc_ticket t;
    assert_int_equal(pc_ticket_open(tpk, b, (size_t)n - 1, &t), PC_EPARSE);
    assert_int_equal(pc_ticket_open(tpk, b, (size_t)n + 1, &t), PC_EPARSE);
    assert_int_equal(pc_ticket_open(tpk, b, 0, &t), PC_EPARSE);
    b[44] = 200; /* video length past the end */
    assert_int_equal(pc_ticket_open(tpk, b, (size_t)n, &t), PC_EPARSE);
    b[44] = 0;
    assert_int_equal(pc_ticket_open(tpk, b, (size_t)n, &t), PC_EPARSE);
    pc_ticket bad = {.expires = 1};
    strcpy(bad.video, "no/slashes");
    assert_int_equal(pc_ticket_sign(tsk, &bad, b), PC_EINVAL);
}

static void proof_window_and_binding(void **state)
{
    (void)state;
    uint8_t sig[64];
    pc_proof_sign(psk, 10000, sig);
    assert_int_equal(pc_proof_verify(ppk, 10000, sig, 10000), 0);
    assert_int_equal(pc_proof_verify(ppk, 10000, sig, 10000 + PC_PROOF_WINDOW_S), 0);
    assert_int_equal(pc_proof_verify(ppk, 10000, sig, 10000 + PC_PROOF_WINDOW_S + 1), PC_EEXPIRED);
    assert_int_equal(pc_proof_verify(ppk, 10000, sig, 10000 - PC_PROOF_WINDOW_S - 1), PC_EEXPIRED);
    assert_int_equal(pc_proof_verify(ppk, 10001, sig, 10000), PC_EBADSIG); /* the time is signed */
    assert_int_equal(pc_proof_verify(tpk, 10000, sig, 10000), PC_EBADSIG); /* so is the key */
}

static void video_ids(void **state)
{
    (void)state;
    assert_true(pc_video_id_valid("abc-DEF_123", 11));
    assert_false(pc_video_id_valid("", 0));
    assert_false(pc_video_id_valid("a b", 3));
    assert_false(pc_video_id_valid("../x", 4));
    char longid[66];
    memset(longid, 'a', 65);
    longid[65] = 0;
    assert_true(pc_video_id_valid(longid, 64));
    assert_false(pc_video_id_valid(longid, 65));
}

/* Media tokens: the HMAC of docs/origin.md (known answer from Python's hmac), the exact form as issued, and
 * the expiry second. */
static void media_tokens(void **state)
{
    (void)state;
    uint8_t key[PC_MEDIA_KEY_LEN];
    for (int i = 0; i < PC_MEDIA_KEY_LEN; i++)
        key[i] = (uint8_t)i;
    char sig[PC_MEDIA_SIG_LEN + 1], id[17];
    pc_media_token_sig(key, "vid-1", 1700000000, sig);
    assert_string_equal(sig, "qNkJ_-HZwbwc8z33yth8sdmm07DokMrfBQf1ErpCaCI");
    pc_media_key_id(key, id);
    assert_string_equal(id, "699a693d5f371e95");
    const char *good = "exp=1700000000&sig=qNkJ_-HZwbwc8z33yth8sdmm07DokMrfBQf1ErpCaCI";
    int64_t exp = 0;
    assert_int_equal(pc_media_token_check(key, "vid-1", good, strlen(good), 1700000000, &exp), 0);
    assert_int_equal(exp, 1700000000);
    assert_int_equal(pc_media_token_check(key, "vid-1", good, strlen(good), 1700000001, &exp), PC_EEXPIRED);
    assert_int_equal(pc_media_token_check(key, "vid-2", good, strlen(good), 0, &exp), PC_EBADSIG);
    uint8_t other[PC_MEDIA_KEY_LEN] = {0};
    assert_int_equal(pc_media_token_check(other, "vid-1", good, strlen(good), 0, &exp), PC_EBADSIG);
    static const char *const malformed[] = {
        "",
        "exp=01700000000&sig=qNkJ_-HZwbwc8z33yth8sdmm07DokMrfBQf1ErpCaCI",  /* not canonical */
        "exp=+1700000000&sig=qNkJ_-HZwbwc8z33yth8sdmm07DokMrfBQf1ErpCaCI",
        "exp=0&sig=qNkJ_-HZwbwc8z33yth8sdmm07DokMrfBQf1ErpCaCI",
        "exp=&sig=qNkJ_-HZwbwc8z33yth8sdmm07DokMrfBQf1ErpCaCI",
        "exp=99999999999999999999&sig=qNkJ_-HZwbwc8z33yth8sdmm07DokMrfBQf1ErpCaCI",
        "exp=1700000000&sig=qNkJ_-HZwbwc8z33yth8sdmm07DokMrfBQf1ErpCaC",    /* a character short */
        "exp=1700000000&sig=qNkJ_-HZwbwc8z33yth8sdmm07DokMrfBQf1ErpCaCIA",  /* one over */
        "sig=qNkJ_-HZwbwc8z33yth8sdmm07DokMrfBQf1ErpCaCI&exp=1700000000",  /* another order */
        "exp=1700000000&sig=qNkJ_-HZwbwc8z33yth8sdmm07DokMrfBQf1ErpCaCI&x",
        "exp=1700000000&x=1&sig=qNkJ_-HZwbwc8z33yth8sdmm07DokMrfBQf1ErpCaC",
        "exp=1700000000",
    };
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
        assert_int_equal(pc_media_token_check(key, "vid-1", malformed[i], strlen(malformed[i]), 0, &exp), PC_EPARSE);
    /* the length given, not the string's: a token followed by more bytes is not a token */
    assert_int_equal(pc_media_token_check(key, "vid-1", good, strlen(good) - 1, 0, &exp), PC_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_ticket_opens_and_checks), cmocka_unit_test(expiry_is_exact),
        cmocka_unit_test(forged_tickets_fail),           cmocka_unit_test(wrong_video_or_key_fails),
        cmocka_unit_test(malformed_lengths_fail),        cmocka_unit_test(proof_window_and_binding),
        cmocka_unit_test(video_ids),                     cmocka_unit_test(media_tokens),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
