/* pc_crypto: BLAKE2b-256, Ed25519 (RFC 8032), key files, HMAC-SHA256, hex, base64 and random ids. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "pc_crypto.h"
#include "tmpdir.h"

/* ---- helpers ---- */

static void unhex_or_die(const char *hex, uint8_t *out, size_t outlen)
{
    assert_int_equal(pc_unhex(hex, strlen(hex), out, outlen), 0);
}

static void assert_hash_hex(const uint8_t h[PC_B2_LEN], const char *want)
{
    char got[2 * PC_B2_LEN + 1];
    pc_hex(h, PC_B2_LEN, got);
    assert_string_equal(got, want);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len > 0)
        assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static size_t read_file(const char *path, uint8_t *out, size_t cap)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(out, 1, cap, f);
    fclose(f);
    return n;
}

/* Directory entries other than "." and "..". */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* ---- BLAKE2b-256 ---- */

static const pc_b2_impl b2_impls[] = {PC_B2_SODIUM, PC_B2_GCRYPT};

static void blake2b_known_vectors(void **state)
{
    (void)state;
    pc_b2_impl chosen = pc_b2_current();
    for (size_t k = 0; k < sizeof(b2_impls) / sizeof(b2_impls[0]); k++) {
        assert_int_equal(pc_b2_use(b2_impls[k]), 0); /* libgcrypt is usable here (no FIPS mode) */
        uint8_t h[PC_B2_LEN];
        pc_blake2b256("abc", 3, h);
        assert_hash_hex(h, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
        pc_blake2b256("", 0, h);
        assert_hash_hex(h, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
    }
    assert_int_equal(pc_b2_use(chosen), 0);
}

/* The two libraries pc_crypto_init chooses between give libsodium's digest for every length around the
 * 128-byte block and for a segment-sized input; init again keeps the choice. */
static void blake2b_both_libraries_agree(void **state)
{
    (void)state;
    pc_b2_impl chosen = pc_b2_current();
    assert_true(chosen == PC_B2_SODIUM || chosen == PC_B2_GCRYPT);
    assert_int_equal(pc_crypto_init(), 0);
    assert_int_equal(pc_b2_current(), chosen);
    assert_string_equal(pc_b2_name(PC_B2_GCRYPT), "libgcrypt");
    size_t big = (2u << 20) + 77;
    uint8_t *data = malloc(big);
    assert_non_null(data);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 131 + (i >> 9));
    assert_int_equal(pc_b2_use(PC_B2_GCRYPT), 0);
    for (size_t len = 0; len <= 400; len++) {
        uint8_t want[PC_B2_LEN], got[PC_B2_LEN];
        crypto_generichash(want, PC_B2_LEN, data + len % 7, len, NULL, 0);
        pc_blake2b256(data + len % 7, len, got);
        assert_memory_equal(got, want, PC_B2_LEN);
    }
    uint8_t want[PC_B2_LEN], got[PC_B2_LEN];
    crypto_generichash(want, PC_B2_LEN, data, big, NULL, 0);
    pc_blake2b256(data, big, got);
    assert_memory_equal(got, want, PC_B2_LEN);
    free(data);
    assert_int_equal(pc_b2_use(chosen), 0);
}

static void blake2b_streaming_equals_one_shot(void **state)
{
    (void)state;
    const char *msg = "The quick brown fox jumps over the lazy dog";
    size_t len = strlen(msg);
    uint8_t one[PC_B2_LEN], streamed[PC_B2_LEN];
    pc_blake2b256(msg, len, one);
    assert_hash_hex(one, "01718cec35cd3d796dd00020e0bfecb473ad23457d063b75eff29c0ffa2e58a9");
    /* every split point, including empty first and last pieces */
    for (size_t cut = 0; cut <= len; cut++) {
        pc_b2_state st;
        pc_b2_init(&st);
        pc_b2_update(&st, msg, cut);
        pc_b2_update(&st, "", 0);
        pc_b2_update(&st, msg + cut, len - cut);
        pc_b2_final(&st, streamed);
        assert_memory_equal(streamed, one, PC_B2_LEN);
    }
}

static void blake2b_file_hashes_contents_and_reports_size(void **state)
{
    tmpdir *t = *state;
    char p[128];
    /* larger than the 64 KiB read buffer so the loop runs more than once */
    size_t len = (1u << 16) * 2 + 123;
    uint8_t *data = malloc(len);
    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 31 + 7);
    path_in(t, "data.bin", p, sizeof(p));
    write_file(p, data, len);
    uint8_t want[PC_B2_LEN], got[PC_B2_LEN];
    crypto_generichash(want, PC_B2_LEN, data, len, NULL, 0);
    free(data);
    uint64_t size = 0;
    assert_int_equal(pc_blake2b256_file(p, got, &size), 0);
    assert_memory_equal(got, want, PC_B2_LEN);
    assert_int_equal(size, len);

    path_in(t, "empty.bin", p, sizeof(p));
    write_file(p, NULL, 0);
    size = 99;
    assert_int_equal(pc_blake2b256_file(p, got, &size), 0);
    assert_hash_hex(got, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
    assert_int_equal(size, 0);
    assert_int_equal(pc_blake2b256_file(p, got, NULL), 0); /* size is optional */

    path_in(t, "missing.bin", p, sizeof(p));
    assert_int_equal(pc_blake2b256_file(p, got, &size), PC_ENOENT);
}

/* ---- Ed25519 ---- */

static const char rfc8032_seed[] = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char rfc8032_pk[] = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
static const char rfc8032_sig[] = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

static void ed25519_rfc8032_test1(void **state)
{
    (void)state;
    uint8_t seed[32], pk_want[PC_ED25519_PK_LEN], sig_want[PC_ED25519_SIG_LEN];
    unhex_or_die(rfc8032_seed, seed, sizeof(seed));
    unhex_or_die(rfc8032_pk, pk_want, sizeof(pk_want));
    unhex_or_die(rfc8032_sig, sig_want, sizeof(sig_want));

    uint8_t pk[PC_ED25519_PK_LEN], sk[PC_ED25519_SK_LEN];
    assert_int_equal(crypto_sign_seed_keypair(pk, sk, seed), 0);
    assert_memory_equal(pk, pk_want, sizeof(pk));
    /* libsodium's secret key is seed || pk */
    assert_memory_equal(sk, seed, 32);
    assert_memory_equal(sk + 32, pk_want, 32);

    uint8_t sig[PC_ED25519_SIG_LEN];
    pc_ed25519_sign(sk, "", 0, sig);
    assert_memory_equal(sig, sig_want, sizeof(sig));
    assert_int_equal(pc_ed25519_verify(pk_want, "", 0, sig_want), 0);
}

static void ed25519_verify_rejects_any_flipped_bit(void **state)
{
    (void)state;
    uint8_t pk[PC_ED25519_PK_LEN], sk[PC_ED25519_SK_LEN], sig[PC_ED25519_SIG_LEN];
    crypto_sign_keypair(pk, sk);
    uint8_t msg[] = "segment bytes";
    pc_ed25519_sign(sk, msg, sizeof(msg), sig);
    assert_int_equal(pc_ed25519_verify(pk, msg, sizeof(msg), sig), 0);

    for (size_t i = 0; i < sizeof(sig); i += 7) {
        sig[i] ^= 0x01;
        assert_int_equal(pc_ed25519_verify(pk, msg, sizeof(msg), sig), PC_EBADSIG);
        sig[i] ^= 0x01;
    }
    msg[3] ^= 0x80;
    assert_int_equal(pc_ed25519_verify(pk, msg, sizeof(msg), sig), PC_EBADSIG);
    msg[3] ^= 0x80;
    pk[0] ^= 0x04;
    assert_int_equal(pc_ed25519_verify(pk, msg, sizeof(msg), sig), PC_EBADSIG);
    pk[0] ^= 0x04;
    /* the message length is covered too */
    assert_int_equal(pc_ed25519_verify(pk, msg, sizeof(msg) - 1, sig), PC_EBADSIG);
    assert_int_equal(pc_ed25519_verify(pk, msg, sizeof(msg), sig), 0);
}

static void ed25519_key_file_is_created_0600_and_reloaded(void **state)
{
    tmpdir *t = *state;
    char p[128];
    path_in(t, "key", p, sizeof(p));
    uint8_t pk1[PC_ED25519_PK_LEN], sk1[PC_ED25519_SK_LEN], pk2[PC_ED25519_PK_LEN], sk2[PC_ED25519_SK_LEN];
    assert_int_equal(pc_ed25519_load_or_create(p, pk1, sk1), 0);

    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, PC_ED25519_SK_LEN);
    uint8_t disk[128];
    assert_int_equal(read_file(p, disk, sizeof(disk)), PC_ED25519_SK_LEN);
    assert_memory_equal(disk, sk1, PC_ED25519_SK_LEN);

    assert_int_equal(pc_ed25519_load_or_create(p, pk2, sk2), 0);
    assert_memory_equal(sk1, sk2, sizeof(sk1));
    assert_memory_equal(pk1, pk2, sizeof(pk1));

    /* the pair works: a signature by sk verifies under pk */
    uint8_t sig[PC_ED25519_SIG_LEN];
    pc_ed25519_sign(sk2, "x", 1, sig);
    assert_int_equal(pc_ed25519_verify(pk1, "x", 1, sig), 0);

    /* no temporary file is left next to the key */
    assert_int_equal(count_entries(t->dir), 1);
}

static void ed25519_key_file_of_wrong_size_is_rejected_and_kept(void **state)
{
    tmpdir *t = *state;
    char p[128];
    path_in(t, "short.key", p, sizeof(p));
    uint8_t junk[PC_ED25519_SK_LEN - 1];
    memset(junk, 0xab, sizeof(junk));
    write_file(p, junk, sizeof(junk));
    uint8_t pk[PC_ED25519_PK_LEN], sk[PC_ED25519_SK_LEN];
    assert_int_equal(pc_ed25519_load_or_create(p, pk, sk), PC_EPARSE);
    uint8_t disk[128];
    assert_int_equal(read_file(p, disk, sizeof(disk)), sizeof(junk)); /* never overwritten */
    assert_memory_equal(disk, junk, sizeof(junk));

    uint8_t longer[PC_ED25519_SK_LEN + 1];
    memset(longer, 0xcd, sizeof(longer));
    write_file(p, longer, sizeof(longer));
    assert_int_equal(pc_ed25519_load_or_create(p, pk, sk), PC_EPARSE);

    /* the right size, but the second half is not the first half's public key: it would publish a key
     * that verifies none of its signatures */
    uint8_t mixed[PC_ED25519_SK_LEN];
    memset(mixed, 'x', sizeof(mixed));
    write_file(p, mixed, sizeof(mixed));
    assert_int_equal(pc_ed25519_load_or_create(p, pk, sk), PC_EPARSE);
    uint8_t other_pk[PC_ED25519_PK_LEN], other_sk[PC_ED25519_SK_LEN];
    path_in(t, "good.key", p, sizeof(p));
    assert_int_equal(pc_ed25519_load_or_create(p, other_pk, other_sk), 0);
    memcpy(mixed, other_sk, PC_ED25519_SK_LEN / 2); /* a real seed with another key's public half */
    memset(mixed + PC_ED25519_SK_LEN / 2, 'x', PC_ED25519_SK_LEN / 2);
    path_in(t, "mixed.key", p, sizeof(p));
    write_file(p, mixed, sizeof(mixed));
    assert_int_equal(pc_ed25519_load_or_create(p, pk, sk), PC_EPARSE);
}

static void secret_is_created_once_and_reloaded(void **state)
{
    tmpdir *t = *state;
    char p[128];
    path_in(t, "secret", p, sizeof(p));
    uint8_t a[32], b[32];
    memset(a, 0, sizeof(a));
    assert_int_equal(pc_secret_load_or_create(p, a, sizeof(a)), 0);
    uint8_t zero[32] = {0};
    assert_memory_not_equal(a, zero, sizeof(a)); /* 2^-256 chance of a false failure */
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 32);
    memset(b, 0, sizeof(b));
    assert_int_equal(pc_secret_load_or_create(p, b, sizeof(b)), 0);
    assert_memory_equal(a, b, sizeof(a));
    /* asking for a different length than the file holds is a malformed file */
    uint8_t c[16];
    assert_int_equal(pc_secret_load_or_create(p, c, sizeof(c)), PC_EPARSE);

    path_in(t, "secret.bad", p, sizeof(p));
    write_file(p, "abc", 3);
    assert_int_equal(pc_secret_load_or_create(p, b, sizeof(b)), PC_EPARSE);

    /* a process killed while creating a key left its temporary file, a secret key of its own: the next
     * load removes it (a dead writer's, of this key only) */
    char left[160], other[160], live[160];
    path_in(t, "secret.tmp.999999999.0", left, sizeof(left));
    path_in(t, "other.tmp.999999999.0", other, sizeof(other));
    path_in(t, "secret.tmp.1.0", live, sizeof(live)); /* pid 1 lives */
    write_file(left, "k", 1);
    write_file(other, "k", 1);
    write_file(live, "k", 1);
    path_in(t, "secret", p, sizeof(p));
    assert_int_equal(pc_secret_load_or_create(p, b, sizeof(b)), 0);
    assert_int_equal(stat(left, &st), -1);
    assert_int_equal(stat(other, &st), 0);
    assert_int_equal(stat(live, &st), 0);
    path_in(t, "ed.tmp.999999999.4", left, sizeof(left));
    write_file(left, "k", 1);
    path_in(t, "ed", p, sizeof(p));
    uint8_t pk[PC_ED25519_PK_LEN], sk[PC_ED25519_SK_LEN];
    assert_int_equal(pc_ed25519_load_or_create(p, pk, sk), 0);
    assert_int_equal(stat(left, &st), -1);
    /* the name versions before pc_open_tmp used, NAME.tmp.PID: a dead writer's goes too */
    char old_left[160], old_live[160];
    path_in(t, "ed.tmp.999999999", old_left, sizeof(old_left));
    path_in(t, "ed.tmp.1", old_live, sizeof(old_live));
    write_file(old_left, "k", 1);
    write_file(old_live, "k", 1);
    assert_int_equal(pc_ed25519_load_or_create(p, pk, sk), 0);
    assert_int_equal(stat(old_left, &st), -1);
    assert_int_equal(stat(old_live, &st), 0);
    unlink(old_live);
    unlink(other);
    unlink(live);
}

/* ---- HMAC-SHA256 ---- */

static void hmac_sha256_matches_reference(void **state)
{
    (void)state;
    uint8_t key[32], out[PC_HMAC_LEN], want[PC_HMAC_LEN];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)i;
    /* python3: hmac.new(bytes(range(32)), msg, hashlib.sha256).hexdigest() */
    const char *msg = "upload\nabc\n1700000000";
    pc_hmac_sha256(key, msg, strlen(msg), out);
    unhex_or_die("f2b68bceb7f8f58ead20ed4edfa3db7625ecbe2ca89df62a53bf838c43c2edc2", want, sizeof(want));
    assert_memory_equal(out, want, sizeof(out));
    pc_hmac_sha256(key, "", 0, out);
    unhex_or_die("d38b42096d80f45f826b44a9d5607de72496a415d3f4a1a8c88e3bb9da8dc1cb", want, sizeof(want));
    assert_memory_equal(out, want, sizeof(out));
    key[31] ^= 1;
    pc_hmac_sha256(key, "", 0, out);
    assert_memory_not_equal(out, want, sizeof(out));
}

static void ct_equal_compares_every_byte(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    memset(a, 7, sizeof(a));
    memcpy(b, a, sizeof(b));
    assert_int_equal(pc_ct_equal(a, b, sizeof(a)), 1);
    b[31] ^= 1;
    assert_int_equal(pc_ct_equal(a, b, sizeof(a)), 0);
    assert_int_equal(pc_ct_equal(a, b, 31), 1);
    b[31] ^= 1;
    b[0] ^= 0x80;
    assert_int_equal(pc_ct_equal(a, b, sizeof(a)), 0);
}

/* ---- hex ---- */

static void hex_round_trip_and_case(void **state)
{
    (void)state;
    const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char s[2 * sizeof(in) + 1];
    memset(s, 'x', sizeof(s));
    pc_hex(in, sizeof(in), s);
    assert_string_equal(s, "00017f80abff");
    uint8_t back[sizeof(in)];
    assert_int_equal(pc_unhex(s, strlen(s), back, sizeof(back)), 0);
    assert_memory_equal(back, in, sizeof(in));
    assert_int_equal(pc_unhex("00017F80ABFF", 12, back, sizeof(back)), 0); /* uppercase accepted */
    assert_memory_equal(back, in, sizeof(in));
    char empty[1] = {'x'};
    pc_hex(in, 0, empty);
    assert_string_equal(empty, "");
}

static void unhex_rejects_wrong_length_and_bad_digits(void **state)
{
    (void)state;
    uint8_t out[3];
    assert_int_equal(pc_unhex("abcde", 5, out, 3), PC_EPARSE);   /* odd */
    assert_int_equal(pc_unhex("abcd", 4, out, 3), PC_EPARSE);    /* too short */
    assert_int_equal(pc_unhex("abcdef00", 8, out, 3), PC_EPARSE); /* too long */
    assert_int_equal(pc_unhex("abcdeg", 6, out, 3), PC_EPARSE);  /* 'g' */
    assert_int_equal(pc_unhex("ab cde", 6, out, 3), PC_EPARSE);
    assert_int_equal(pc_unhex("/bcdef", 6, out, 3), PC_EPARSE);  /* '0' - 1 */
    assert_int_equal(pc_unhex(":bcdef", 6, out, 3), PC_EPARSE);  /* '9' + 1 */
    assert_int_equal(pc_unhex("@bcdef", 6, out, 3), PC_EPARSE);  /* 'A' - 1 */
    assert_int_equal(pc_unhex("`bcdef", 6, out, 3), PC_EPARSE);  /* 'a' - 1 */
    assert_int_equal(pc_unhex("abcdef", 6, out, 3), 0);
    assert_int_equal(out[0], 0xab);
    assert_int_equal(out[2], 0xef);
}

/* ---- base64 ---- */

static void b64_standard_and_urlsafe_round_trip(void **state)
{
    (void)state;
    const uint8_t tricky[] = {0xfb, 0xff, 0xfe};
    char s[16];
    assert_int_equal(pc_b64_encode(tricky, 3, s, 0), 4);
    assert_string_equal(s, "+//+");
    assert_int_equal(pc_b64_encode(tricky, 3, s, 1), 4);
    assert_string_equal(s, "-__-");
    assert_int_equal(pc_b64_encode((const uint8_t *)"ab", 2, s, 0), 4);
    assert_string_equal(s, "YWI=");
    assert_int_equal(pc_b64_encode((const uint8_t *)"ab", 2, s, 1), 3);
    assert_string_equal(s, "YWI");

    uint8_t in[70], out[70];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(251 * i + 3);
    for (int url = 0; url <= 1; url++) {
        for (size_t len = 0; len <= sizeof(in); len++) {
            char enc[128];
            size_t cap = pc_b64_encoded_len(len, url);
            assert_true(cap <= sizeof(enc));
            size_t n = pc_b64_encode(in, len, enc, url);
            assert_int_equal(n + 1, cap); /* the stated length is exact, NUL included */
            assert_int_equal(strlen(enc), n);
            if (url) {
                assert_null(strchr(enc, '='));
                assert_null(strchr(enc, '+'));
                assert_null(strchr(enc, '/'));
            } else {
                assert_int_equal(n % 4, 0);
            }
            size_t got = 999;
            memset(out, 0, sizeof(out));
            assert_int_equal(pc_b64_decode(enc, n, out, len, &got, url), 0); /* exact-size buffer */
            assert_int_equal(got, len);
            assert_memory_equal(out, in, len);
        }
    }
}

static void b64_decode_rejects_garbage(void **state)
{
    (void)state;
    uint8_t out[32];
    size_t n;
    assert_int_equal(pc_b64_decode("YW!j", 4, out, sizeof(out), &n, 0), PC_EPARSE);
    assert_int_equal(pc_b64_decode("YWI", 3, out, sizeof(out), &n, 0), PC_EPARSE);   /* standard needs padding */
    assert_int_equal(pc_b64_decode("YWI=", 4, out, sizeof(out), &n, 1), PC_EPARSE);  /* url-safe has none */
    assert_int_equal(pc_b64_decode("+//+", 4, out, sizeof(out), &n, 1), PC_EPARSE);  /* wrong alphabet */
    assert_int_equal(pc_b64_decode("-__-", 4, out, sizeof(out), &n, 0), PC_EPARSE);
    assert_int_equal(pc_b64_decode("YWJj ", 5, out, sizeof(out), &n, 0), PC_EPARSE); /* trailing junk */
    assert_int_equal(pc_b64_decode("Y", 1, out, sizeof(out), &n, 1), PC_EPARSE);
    /* the stated length is honoured: the NUL-terminated tail beyond it is not read */
    assert_int_equal(pc_b64_decode("YWJj!!!!", 4, out, sizeof(out), &n, 0), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "abc", 3);
    assert_int_equal(pc_b64_decode("", 0, out, sizeof(out), &n, 0), 0);
    assert_int_equal(n, 0);
}

static void b64_decode_too_big_for_output(void **state)
{
    (void)state;
    uint8_t in[64], out[32];
    memset(in, 0x5a, sizeof(in));
    char enc[128];
    for (int url = 0; url <= 1; url++) {
        size_t n = pc_b64_encode(in, sizeof(in), enc, url);
        size_t got = 0;
        assert_int_equal(pc_b64_decode(enc, n, out, sizeof(out), &got, url), PC_ETOOBIG);
        /* a buffer of 30 (a multiple of 3) and 31 bytes of input */
        n = pc_b64_encode(in, 31, enc, url);
        assert_int_equal(pc_b64_decode(enc, n, out, 30, &got, url), PC_ETOOBIG);
    }
}

/* Input one byte too long for the buffer is "too big", not "malformed". */
static void b64_decode_one_byte_too_many_is_too_big(void **state)
{
    (void)state;
    uint8_t in[33], out[32];
    memset(in, 0x5a, sizeof(in));
    char enc[64];
    for (int url = 0; url <= 1; url++) {
        size_t n = pc_b64_encode(in, sizeof(in), enc, url);
        size_t got = 0;
        assert_int_equal(pc_b64_decode(enc, n, out, sizeof(out), &got, url), PC_ETOOBIG);
    }
}

/* ---- random ids ---- */

static void random_id_alphabet_and_length(void **state)
{
    (void)state;
    int seen[256] = {0};
    for (int round = 0; round < 200; round++) {
        char id[21];
        memset(id, 'X', sizeof(id));
        pc_random_id(id, 20);
        assert_int_equal(strlen(id), 20);
        for (int i = 0; i < 20; i++) {
            unsigned char c = (unsigned char)id[i];
            assert_true((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7'));
            seen[c]++;
        }
    }
    /* 4000 draws from 32 symbols: each shows up (failure chance ~ 32 * (31/32)^4000, negligible) */
    const char *alphabet = "abcdefghijklmnopqrstuvwxyz234567";
    for (const char *c = alphabet; *c != '\0'; c++)
        assert_true(seen[(unsigned char)*c] > 0);
    char a[21], b[21];
    pc_random_id(a, 20);
    pc_random_id(b, 20);
    assert_string_not_equal(a, b);
    char one[2] = {'X', 'X'};
    pc_random_id(one, 0);
    assert_int_equal(one[0], '\0');
}

static int group_setup(void **state)
{
    (void)state;
    return pc_crypto_init() == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(blake2b_known_vectors),
        cmocka_unit_test(blake2b_streaming_equals_one_shot),
        cmocka_unit_test(blake2b_both_libraries_agree),
        cmocka_unit_test_setup_teardown(blake2b_file_hashes_contents_and_reports_size, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test(ed25519_rfc8032_test1),
        cmocka_unit_test(ed25519_verify_rejects_any_flipped_bit),
        cmocka_unit_test_setup_teardown(ed25519_key_file_is_created_0600_and_reloaded, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(ed25519_key_file_of_wrong_size_is_rejected_and_kept, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test_setup_teardown(secret_is_created_once_and_reloaded, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test(hmac_sha256_matches_reference),
        cmocka_unit_test(ct_equal_compares_every_byte),
        cmocka_unit_test(hex_round_trip_and_case),
        cmocka_unit_test(unhex_rejects_wrong_length_and_bad_digits),
        cmocka_unit_test(b64_standard_and_urlsafe_round_trip),
        cmocka_unit_test(b64_decode_rejects_garbage),
        cmocka_unit_test(b64_decode_too_big_for_output),
        cmocka_unit_test(b64_decode_one_byte_too_many_is_too_big),
        cmocka_unit_test(random_id_alphabet_and_length),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
