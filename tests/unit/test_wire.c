/* peer/wire: the peer-link codec: HELLO, the authenticated handshake, sealed records and messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pc_ticket.h"
#include "wire.h"

#define HELLO_FIXED (4 + 1 + 1 + PC_WIRE_KX_LEN + 2) /* bytes before the ticket */
#define RECORD_LEN_MIN (1 + PC_WIRE_TAG_LEN)
#define RECORD_LEN_MAX (PC_WIRE_RECORD_MAX - 4)

static uint8_t tpk[32], tsk[64]; /* the tracker */

static int setup(void **state)
{
    (void)state;
    assert_int_equal(pc_crypto_init(), 0);
    crypto_sign_keypair(tpk, tsk);
    return 0;
}

/* ---- helpers ---- */

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A copy of |len| bytes in an allocation of exactly |len| bytes, so that ASan sees any read past it. */
static uint8_t no_bytes; /* stands in when malloc(0) gives NULL */

static uint8_t *exact_copy(const uint8_t *in, size_t len)
{
    uint8_t *p = malloc(len);
    if (p == NULL) {
        assert_int_equal(len, 0);
        return &no_bytes;
    }
    if (len)
        memcpy(p, in, len);
    return p;
}

static void exact_free(uint8_t *p)
{
    if (p != &no_bytes)
        free(p);
}

static int hello_decode_exact(const uint8_t *in, size_t len)
{
    uint8_t *p = exact_copy(in, len);
    pc_wire_hello h;
    size_t used = 0;
    int rc = pc_wire_hello_decode(p, len, &h, &used);
    exact_free(p);
    return rc;
}

static int msg_decode_exact(const uint8_t *in, size_t len)
{
    uint8_t *p = exact_copy(in, len);
    pc_wire_msg m;
    int rc = pc_wire_msg_decode(p, len, &m);
    exact_free(p);
    return rc;
}

/* A side of a link: ephemeral kx keys, identity keys, a ticket for its identity and its HELLO bytes. */
typedef struct side {
    uint8_t kx_pk[32], kx_sk[32];
    uint8_t id_pk[32], id_sk[64];
    pc_wire_hello hello;
    uint8_t wire[PC_WIRE_HELLO_MAX];
    size_t wire_len;
} side;

static void side_make(side *s, uint8_t role, const char *video, uint32_t up_kbps)
{
    memset(s, 0, sizeof(*s));
    crypto_kx_keypair(s->kx_pk, s->kx_sk);
    crypto_sign_keypair(s->id_pk, s->id_sk);
    pc_ticket t;
    memset(&t, 0, sizeof(t));
    memcpy(t.key, s->id_pk, 32);
    strcpy(t.video, video);
    t.expires = 2000000000;
    int n = pc_ticket_sign(tsk, &t, s->hello.ticket);
    assert_true(n > 0);
    s->hello.ticket_len = (size_t)n;
    s->hello.role = role;
    memcpy(s->hello.kx_pk, s->kx_pk, 32);
    s->hello.up_kbps = up_kbps;
    int w = pc_wire_hello_encode(&s->hello, s->wire);
    assert_true(w > 0);
    s->wire_len = (size_t)w;
}

/* Two ends of one link with matching record keys: a is the connector, b the acceptor. */
static void link_keys(pc_wire_keys *a, pc_wire_keys *b)
{
    uint8_t apk[32], ask[32], bpk[32], bsk[32];
    crypto_kx_keypair(apk, ask);
    crypto_kx_keypair(bpk, bsk);
    assert_int_equal(pc_wire_keys_derive(a, PC_WIRE_CONNECTOR, apk, ask, bpk), 0);
    assert_int_equal(pc_wire_keys_derive(b, PC_WIRE_ACCEPTOR, bpk, bsk, apk), 0);
}

/* Seals the |plen|-byte message |plain| into |rec| (room for plen + 20 bytes); returns the record length. */
static size_t seal_msg(pc_wire_keys *k, uint8_t *rec, const uint8_t *plain, size_t plen)
{
    memcpy(rec + 4, plain, plen);
    return pc_wire_seal(k, rec, plen);
}

/* ---- HELLO ---- */

static void hello_round_trips_with_its_exact_length(void **state)
{
    (void)state;
    side s;
    side_make(&s, PC_WIRE_ACCEPTOR, "video-1", 123456789);
    assert_int_equal(s.wire_len, HELLO_FIXED + s.hello.ticket_len + 4);
    assert_memory_equal(s.wire, "PCL1", 4);
    assert_int_equal(s.wire[4], PC_WIRE_VERSION);
    assert_int_equal(s.wire[5], PC_WIRE_ACCEPTOR);
    assert_int_equal(rd32(s.wire + s.wire_len - 4), 123456789); /* up_kbps is big-endian, last */

    /* decoded from a buffer with the start of the next message after it */
    uint8_t buf[PC_WIRE_HELLO_MAX + 16];
    memcpy(buf, s.wire, s.wire_len);
    memset(buf + s.wire_len, 0x5a, 16);
    pc_wire_hello h;
    size_t used = 0;
    assert_int_equal(pc_wire_hello_decode(buf, s.wire_len + 16, &h, &used), 0);
    assert_int_equal(used, s.wire_len);
    assert_int_equal(h.role, PC_WIRE_ACCEPTOR);
    assert_memory_equal(h.kx_pk, s.kx_pk, 32);
    assert_int_equal(h.ticket_len, s.hello.ticket_len);
    assert_memory_equal(h.ticket, s.hello.ticket, h.ticket_len);
    assert_int_equal(h.up_kbps, 123456789);
    pc_ticket t;
    assert_int_equal(pc_ticket_open(tpk, h.ticket, h.ticket_len, &t), 0);
    assert_memory_equal(t.key, s.id_pk, 32);

    /* both ticket length limits, and a connector */
    const size_t lens[] = {1, PC_TICKET_MAX};
    for (size_t i = 0; i < 2; i++) {
        pc_wire_hello in;
        memset(&in, 0, sizeof(in));
        in.role = PC_WIRE_CONNECTOR;
        for (size_t j = 0; j < 32; j++)
            in.kx_pk[j] = (uint8_t)(j * 7 + 1);
        for (size_t j = 0; j < lens[i]; j++)
            in.ticket[j] = (uint8_t)(255 - j);
        in.ticket_len = lens[i];
        in.up_kbps = UINT32_MAX;
        uint8_t w[PC_WIRE_HELLO_MAX];
        int n = pc_wire_hello_encode(&in, w);
        assert_int_equal(n, (int)(HELLO_FIXED + lens[i] + 4));
        assert_true(n <= PC_WIRE_HELLO_MAX);
        assert_int_equal(pc_wire_hello_decode(w, (size_t)n, &h, &used), 0);
        assert_int_equal(used, (size_t)n);
        assert_int_equal(h.role, PC_WIRE_CONNECTOR);
        assert_memory_equal(h.kx_pk, in.kx_pk, 32);
        assert_int_equal(h.ticket_len, lens[i]);
        assert_memory_equal(h.ticket, in.ticket, lens[i]);
        assert_int_equal(h.up_kbps, UINT32_MAX);
    }
}

static void hello_encode_refuses_ticket_lengths_outside_limits(void **state)
{
    (void)state;
    side s;
    side_make(&s, PC_WIRE_CONNECTOR, "v", 0);
    uint8_t w[PC_WIRE_HELLO_MAX + 1];
    s.hello.ticket_len = 0;
    assert_int_equal(pc_wire_hello_encode(&s.hello, w), PC_EINVAL);
    s.hello.ticket_len = PC_TICKET_MAX + 1;
    assert_int_equal(pc_wire_hello_encode(&s.hello, w), PC_EINVAL);
}

static void hello_truncated_prefixes_need_more(void **state)
{
    (void)state;
    side s;
    side_make(&s, PC_WIRE_CONNECTOR, "video-truncated", 1000);
    for (size_t len = 0; len < s.wire_len; len++) /* each prefix alone in an exact allocation */
        assert_int_equal(hello_decode_exact(s.wire, len), PC_EAGAIN);
    assert_int_equal(hello_decode_exact(s.wire, s.wire_len), 0);
}

static void hello_wrong_magic_fails_with_the_first_wrong_byte(void **state)
{
    (void)state;
    side s;
    side_make(&s, PC_WIRE_CONNECTOR, "v", 0);
    for (size_t i = 0; i < 4; i++) {
        uint8_t w[PC_WIRE_HELLO_MAX];
        memcpy(w, s.wire, s.wire_len);
        w[i] ^= 0x20; /* "pCL1", "PcL1", ... */
        for (size_t len = i + 1; len <= s.wire_len; len++)
            assert_int_equal(hello_decode_exact(w, len), PC_EPARSE);
        for (size_t len = 0; len <= i; len++) /* the good bytes before it say nothing yet */
            assert_int_equal(hello_decode_exact(w, len), PC_EAGAIN);
    }
    assert_int_equal(hello_decode_exact((const uint8_t *)"X", 1), PC_EPARSE);
    assert_int_equal(hello_decode_exact((const uint8_t *)"PCL2", 4), PC_EPARSE);
    assert_int_equal(hello_decode_exact((const uint8_t *)"GET ", 4), PC_EPARSE); /* not a peer at all */
    assert_int_equal(hello_decode_exact((const uint8_t *)"\x16\x03\x01", 3), PC_EPARSE); /* a TLS hello */
}

static void hello_wrong_version_or_role_fails_as_soon_as_seen(void **state)
{
    (void)state;
    side s;
    side_make(&s, PC_WIRE_ACCEPTOR, "v", 0);
    const uint8_t versions[] = {0, PC_WIRE_VERSION + 1, 0xff};
    for (size_t i = 0; i < sizeof(versions); i++) {
        uint8_t w[PC_WIRE_HELLO_MAX];
        memcpy(w, s.wire, s.wire_len);
        w[4] = versions[i];
        assert_int_equal(hello_decode_exact(w, 5), PC_EPARSE);
        assert_int_equal(hello_decode_exact(w, s.wire_len), PC_EPARSE);
    }
    const uint8_t roles[] = {2, 3, 0x80, 0xff};
    for (size_t i = 0; i < sizeof(roles); i++) {
        uint8_t w[PC_WIRE_HELLO_MAX];
        memcpy(w, s.wire, s.wire_len);
        w[5] = roles[i];
        assert_int_equal(hello_decode_exact(w, 6), PC_EPARSE);
        assert_int_equal(hello_decode_exact(w, s.wire_len), PC_EPARSE);
    }
}

static void hello_ticket_length_outside_limits_fails_before_the_ticket(void **state)
{
    (void)state;
    side s;
    side_make(&s, PC_WIRE_CONNECTOR, "v", 0);
    uint8_t w[PC_WIRE_HELLO_MAX + 0x10000];
    memset(w, 0, sizeof(w));
    memcpy(w, s.wire, s.wire_len);
    const size_t bad[] = {0, PC_TICKET_MAX + 1, 0x100, 0xffff};
    for (size_t i = 0; i < 4; i++) {
        w[HELLO_FIXED - 2] = (uint8_t)(bad[i] >> 8);
        w[HELLO_FIXED - 1] = (uint8_t)bad[i];
        assert_int_equal(hello_decode_exact(w, HELLO_FIXED), PC_EPARSE); /* no need to wait for it */
        assert_int_equal(hello_decode_exact(w, HELLO_FIXED + bad[i] + 4), PC_EPARSE);
    }
    /* the largest ticket is only waited for */
    w[HELLO_FIXED - 2] = (uint8_t)(PC_TICKET_MAX >> 8);
    w[HELLO_FIXED - 1] = (uint8_t)PC_TICKET_MAX;
    assert_int_equal(hello_decode_exact(w, HELLO_FIXED), PC_EAGAIN);
    assert_int_equal(hello_decode_exact(w, HELLO_FIXED + PC_TICKET_MAX + 3), PC_EAGAIN);
    assert_int_equal(hello_decode_exact(w, HELLO_FIXED + PC_TICKET_MAX + 4), 0);
}

/* ---- handshake ---- */

static void handshake_authenticates_both_sides_and_derives_matching_keys(void **state)
{
    (void)state;
    side c, a; /* connector, acceptor */
    side_make(&c, PC_WIRE_CONNECTOR, "video-1", 5000);
    side_make(&a, PC_WIRE_ACCEPTOR, "video-1", 0);

    /* each decodes the other's HELLO and opens its ticket */
    pc_wire_hello hc, ha;
    size_t used;
    assert_int_equal(pc_wire_hello_decode(c.wire, c.wire_len, &hc, &used), 0);
    assert_int_equal(used, c.wire_len);
    assert_int_equal(pc_wire_hello_decode(a.wire, a.wire_len, &ha, &used), 0);
    assert_int_equal(used, a.wire_len);
    assert_int_equal(hc.role, PC_WIRE_CONNECTOR);
    assert_int_equal(ha.role, PC_WIRE_ACCEPTOR);
    pc_ticket tc, ta;
    assert_int_equal(pc_ticket_check(tpk, hc.ticket, hc.ticket_len, "video-1", c.id_pk, 1000, &tc), 0);
    assert_int_equal(pc_ticket_check(tpk, ha.ticket, ha.ticket_len, "video-1", a.id_pk, 1000, &ta), 0);

    /* both compute the same transcript: connector's HELLO first */
    uint8_t tr_c[32], tr_a[32], tr_swapped[32];
    pc_wire_transcript(c.wire, c.wire_len, a.wire, a.wire_len, tr_c);
    pc_wire_transcript(c.wire, c.wire_len, a.wire, a.wire_len, tr_a);
    assert_memory_equal(tr_c, tr_a, 32);
    pc_wire_transcript(a.wire, a.wire_len, c.wire, c.wire_len, tr_swapped);
    assert_memory_not_equal(tr_c, tr_swapped, 32);

    uint8_t sig_c[PC_WIRE_AUTH_LEN], sig_a[PC_WIRE_AUTH_LEN];
    pc_wire_auth_sign(c.id_sk, PC_WIRE_CONNECTOR, tr_c, sig_c);
    pc_wire_auth_sign(a.id_sk, PC_WIRE_ACCEPTOR, tr_a, sig_a);
    assert_int_equal(pc_wire_auth_verify(tc.key, PC_WIRE_CONNECTOR, tr_a, sig_c), 0); /* acceptor checks */
    assert_int_equal(pc_wire_auth_verify(ta.key, PC_WIRE_ACCEPTOR, tr_c, sig_a), 0);  /* connector checks */

    /* a signature does not pass for the other role (no reflecting the peer's own AUTH back) */
    assert_int_equal(pc_wire_auth_verify(tc.key, PC_WIRE_ACCEPTOR, tr_a, sig_c), PC_EBADSIG);
    assert_int_equal(pc_wire_auth_verify(ta.key, PC_WIRE_CONNECTOR, tr_c, sig_a), PC_EBADSIG);
    assert_int_equal(pc_wire_auth_verify(tc.key, 2, tr_a, sig_c), PC_EBADSIG);
    /* nor under another key: the other side's, or a stranger's */
    assert_int_equal(pc_wire_auth_verify(ta.key, PC_WIRE_CONNECTOR, tr_a, sig_c), PC_EBADSIG);
    uint8_t xpk[32], xsk[64];
    crypto_sign_keypair(xpk, xsk);
    assert_int_equal(pc_wire_auth_verify(xpk, PC_WIRE_ACCEPTOR, tr_c, sig_a), PC_EBADSIG);
    /* nor over the HELLOs in the other order */
    assert_int_equal(pc_wire_auth_verify(tc.key, PC_WIRE_CONNECTOR, tr_swapped, sig_c), PC_EBADSIG);
    /* nor with any bit of the signature flipped */
    for (size_t i = 0; i < PC_WIRE_AUTH_LEN * 8; i += 13) {
        sig_c[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(pc_wire_auth_verify(tc.key, PC_WIRE_CONNECTOR, tr_a, sig_c), PC_EBADSIG);
        sig_c[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    assert_int_equal(pc_wire_auth_verify(tc.key, PC_WIRE_CONNECTOR, tr_a, sig_c), 0);

    /* a man in the middle who changes any byte of either HELLO (here: every byte, one at a time)
     * leaves the two sides with different transcripts, so neither AUTH verifies on the other side */
    for (int which = 0; which < 2; which++) {
        side *s = which ? &a : &c;
        for (size_t i = 0; i < s->wire_len; i++) {
            s->wire[i] ^= 0x01;
            uint8_t tr_m[32];
            pc_wire_transcript(c.wire, c.wire_len, a.wire, a.wire_len, tr_m);
            s->wire[i] ^= 0x01;
            assert_int_equal(pc_wire_auth_verify(tc.key, PC_WIRE_CONNECTOR, tr_m, sig_c), PC_EBADSIG);
            assert_int_equal(pc_wire_auth_verify(ta.key, PC_WIRE_ACCEPTOR, tr_m, sig_a), PC_EBADSIG);
        }
    }
    /* ... or that cuts a HELLO short (the transcript covers the exact lengths) */
    uint8_t tr_cut[32];
    pc_wire_transcript(c.wire, c.wire_len - 1, a.wire, a.wire_len, tr_cut);
    assert_int_equal(pc_wire_auth_verify(tc.key, PC_WIRE_CONNECTOR, tr_cut, sig_c), PC_EBADSIG);

    /* session keys: connector's tx is acceptor's rx and the reverse; the two directions differ */
    pc_wire_keys kc, ka;
    assert_int_equal(pc_wire_keys_derive(&kc, PC_WIRE_CONNECTOR, c.kx_pk, c.kx_sk, ha.kx_pk), 0);
    assert_int_equal(pc_wire_keys_derive(&ka, PC_WIRE_ACCEPTOR, a.kx_pk, a.kx_sk, hc.kx_pk), 0);
    assert_memory_equal(kc.tx, ka.rx, 32);
    assert_memory_equal(kc.rx, ka.tx, 32);
    assert_memory_not_equal(kc.tx, kc.rx, 32);
    assert_int_equal(kc.tx_n, 0);
    assert_int_equal(kc.rx_n, 0);
    assert_int_equal(ka.tx_n, 0);
    assert_int_equal(ka.rx_n, 0);

    /* and they carry records both ways */
    uint8_t rec[64], *msg;
    size_t mlen;
    pc_wire_msg ping = {.type = PC_MSG_PING, .nonce = 42}, m;
    uint8_t plain[32];
    size_t pl = pc_wire_msg_encode(&ping, plain);
    size_t n = seal_msg(&kc, rec, plain, pl);
    assert_int_equal(pc_wire_open(&ka, rec, n, &msg, &mlen, &used), 0);
    assert_int_equal(pc_wire_msg_decode(msg, mlen, &m), 0);
    assert_int_equal(m.type, PC_MSG_PING);
    assert_int_equal(m.nonce, 42);
    ping.type = PC_MSG_PONG;
    pl = pc_wire_msg_encode(&ping, plain);
    n = seal_msg(&ka, rec, plain, pl);
    assert_int_equal(pc_wire_open(&kc, rec, n, &msg, &mlen, &used), 0);
    assert_int_equal(pc_wire_msg_decode(msg, mlen, &m), 0);
    assert_int_equal(m.type, PC_MSG_PONG);

    /* both sides deriving as the same role get unusable keys */
    pc_wire_keys kx;
    assert_int_equal(pc_wire_keys_derive(&kx, PC_WIRE_CONNECTOR, a.kx_pk, a.kx_sk, hc.kx_pk), 0);
    assert_memory_not_equal(kc.tx, kx.rx, 32);

    /* a substituted ephemeral key (man in the middle) gives keys that open nothing */
    uint8_t mpk[32], msk[32];
    crypto_kx_keypair(mpk, msk);
    pc_wire_keys km;
    assert_int_equal(pc_wire_keys_derive(&km, PC_WIRE_ACCEPTOR, a.kx_pk, a.kx_sk, mpk), 0);
    assert_memory_not_equal(kc.tx, km.rx, 32);
    pl = pc_wire_msg_encode(&ping, plain);
    n = seal_msg(&kc, rec, plain, pl);
    assert_int_equal(pc_wire_open(&km, rec, n, &msg, &mlen, &used), PC_EBADSIG);
}

static void keys_derive_refuses_a_low_order_key(void **state)
{
    (void)state;
    uint8_t pk[32], sk[32], zero[32] = {0};
    crypto_kx_keypair(pk, sk);
    pc_wire_keys k;
    assert_int_equal(pc_wire_keys_derive(&k, PC_WIRE_CONNECTOR, pk, sk, zero), PC_EBADSIG);
    assert_int_equal(pc_wire_keys_derive(&k, PC_WIRE_ACCEPTOR, pk, sk, zero), PC_EBADSIG);
    uint8_t one[32] = {1}; /* the point of order 1 */
    assert_int_equal(pc_wire_keys_derive(&k, PC_WIRE_CONNECTOR, pk, sk, one), PC_EBADSIG);
}

static void handshake_and_records_match_the_documented_bytes(void **state)
{
    (void)state;
    side c, a;
    side_make(&c, PC_WIRE_CONNECTOR, "v", 1);
    side_make(&a, PC_WIRE_ACCEPTOR, "v", 2);

    /* transcript = BLAKE2b-256(connector HELLO | acceptor HELLO), unkeyed */
    uint8_t both[2 * PC_WIRE_HELLO_MAX], want[32], tr[32];
    memcpy(both, c.wire, c.wire_len);
    memcpy(both + c.wire_len, a.wire, a.wire_len);
    crypto_generichash(want, 32, both, c.wire_len + a.wire_len, NULL, 0);
    pc_wire_transcript(c.wire, c.wire_len, a.wire, a.wire_len, tr);
    assert_memory_equal(tr, want, 32);

    /* AUTH = Ed25519 over "peercdn link v1" 0x00 | role | transcript */
    for (uint8_t role = 0; role < 2; role++) {
        uint8_t m[16 + 1 + 32], sig[PC_WIRE_AUTH_LEN];
        memcpy(m, "peercdn link v1", 16);
        m[16] = role;
        memcpy(m + 17, tr, 32);
        pc_wire_auth_sign(c.id_sk, role, tr, sig);
        assert_int_equal(crypto_sign_verify_detached(sig, m, sizeof(m), c.id_pk), 0);
        crypto_sign_detached(sig, NULL, m, sizeof(m), a.id_sk);
        assert_int_equal(pc_wire_auth_verify(a.id_pk, role, tr, sig), 0);
    }

    /* keys: the connector is the crypto_kx client */
    uint8_t crx[32], ctx[32], srx[32], stx[32];
    assert_int_equal(crypto_kx_client_session_keys(crx, ctx, c.kx_pk, c.kx_sk, a.kx_pk), 0);
    assert_int_equal(crypto_kx_server_session_keys(srx, stx, a.kx_pk, a.kx_sk, c.kx_pk), 0);
    pc_wire_keys kc, ka;
    assert_int_equal(pc_wire_keys_derive(&kc, PC_WIRE_CONNECTOR, c.kx_pk, c.kx_sk, a.kx_pk), 0);
    assert_int_equal(pc_wire_keys_derive(&ka, PC_WIRE_ACCEPTOR, a.kx_pk, a.kx_sk, c.kx_pk), 0);
    assert_memory_equal(kc.tx, ctx, 32);
    assert_memory_equal(kc.rx, crx, 32);
    assert_memory_equal(ka.tx, stx, 32);
    assert_memory_equal(ka.rx, srx, 32);

    /* record n = length (u32 BE) | ChaCha20-Poly1305-IETF(key tx, nonce 0^4 | n (u64 BE), ad = length) */
    const uint8_t plain[] = {PC_MSG_CANCEL, 1, 2, 3, 4};
    for (uint64_t n = 0; n < 3; n++) {
        uint8_t rec[64], out[64], nonce[12] = {0};
        size_t len = seal_msg(&kc, rec, plain, sizeof(plain));
        assert_int_equal(len, 4 + sizeof(plain) + 16);
        assert_memory_equal(rec, "\x00\x00\x00\x15", 4);
        for (int i = 0; i < 8; i++)
            nonce[4 + i] = (uint8_t)(n >> (56 - 8 * i));
        unsigned long long olen;
        assert_int_equal(crypto_aead_chacha20poly1305_ietf_decrypt(out, &olen, NULL, rec + 4, len - 4, rec, 4,
                                                                   nonce, ka.rx),
                         0);
        assert_int_equal(olen, sizeof(plain));
        assert_memory_equal(out, plain, sizeof(plain));
    }
    /* and a record sealed that way by hand opens, at counter 3 */
    uint8_t rec[64], nonce[12] = {0}, *msg;
    size_t mlen, used;
    nonce[11] = 3;
    memcpy(rec, "\x00\x00\x00\x15", 4);
    crypto_aead_chacha20poly1305_ietf_encrypt(rec + 4, NULL, plain, sizeof(plain), rec, 4, NULL, nonce, ka.tx);
    kc.rx_n = 3;
    assert_int_equal(pc_wire_open(&kc, rec, 25, &msg, &mlen, &used), 0);
    assert_memory_equal(msg, plain, sizeof(plain));
}

/* ---- records ---- */

static void records_round_trip_for_each_message_kind(void **state)
{
    (void)state;
    pc_wire_keys tx, rx;
    link_keys(&tx, &rx);
    uint8_t *rec = malloc(PC_WIRE_RECORD_MAX);
    uint8_t *plain = malloc(PC_WIRE_PLAIN_MAX);
    assert_non_null(rec);
    assert_non_null(plain);

    for (int kind = 0; kind < 7; kind++) {
        size_t pl;
        pc_wire_msg in = {.type = PC_MSG_PING};
        switch (kind) {
        case 0:
            in = (pc_wire_msg){.type = PC_MSG_PING, .nonce = 0x0102030405060708u};
            pl = pc_wire_msg_encode(&in, plain);
            break;
        case 1:
            in = (pc_wire_msg){.type = PC_MSG_REQUEST, .id = 7, .rung = 2, .seg = 99, .offset = 4096,
                               .len = 65536, .due_ms = 1500};
            pl = pc_wire_msg_encode(&in, plain);
            break;
        case 2: {
            pc_wire_range r[3] = {{0, 0, 10}, {1, 5, 5}, {3, 100, 200}};
            pl = pc_wire_have_encode(r, 3, plain);
            break;
        }
        case 3:
            in = (pc_wire_msg){.type = PC_MSG_CANCEL, .id = 0xdeadbeef};
            pl = pc_wire_msg_encode(&in, plain);
            break;
        case 4:
            in = (pc_wire_msg){.type = PC_MSG_BYE, .reason = 3};
            pl = pc_wire_msg_encode(&in, plain);
            break;
        case 5: /* the largest message there is */
            pl = pc_wire_data_header(1, 0, plain);
            for (size_t i = 0; i < PC_WIRE_DATA_MAX; i++)
                plain[pl + i] = (uint8_t)(i * 31 + 7);
            pl += PC_WIRE_DATA_MAX;
            assert_int_equal(pl, PC_WIRE_PLAIN_MAX);
            break;
        default: /* the smallest record: just a type byte (a valid record, though no valid message) */
            plain[0] = PC_MSG_BYE;
            pl = 1;
            break;
        }
        size_t n = seal_msg(&tx, rec, plain, pl);
        assert_int_equal(n, 4 + pl + PC_WIRE_TAG_LEN);
        assert_int_equal(rd32(rec), pl + PC_WIRE_TAG_LEN);
        assert_int_equal(tx.tx_n, (uint64_t)kind + 1);
        if (pl >= 8)
            assert_memory_not_equal(rec + 4, plain, pl); /* it is encrypted */

        uint8_t *msg = NULL;
        size_t mlen = 0, used = 0;
        assert_int_equal(pc_wire_open(&rx, rec, n, &msg, &mlen, &used), 0);
        assert_ptr_equal(msg, rec + 4);
        assert_int_equal(mlen, pl);
        assert_int_equal(used, n);
        assert_int_equal(rx.rx_n, (uint64_t)kind + 1);
        assert_memory_equal(msg, plain, pl);
        pc_wire_msg m;
        if (kind == 6) {
            assert_int_equal(pc_wire_msg_decode(msg, mlen, &m), PC_EPARSE);
            continue;
        }
        assert_int_equal(pc_wire_msg_decode(msg, mlen, &m), 0);
        if (kind == 5) {
            assert_int_equal(m.type, PC_MSG_DATA);
            assert_int_equal(m.dlen, PC_WIRE_DATA_MAX);
            assert_ptr_equal(m.data, msg + 9);
        }
    }
    free(rec);
    free(plain);
}

/* What opening a record whose length field now says |rl| must give with |avail| bytes there. */
static int expected_for_length(uint32_t rl, size_t avail)
{
    if (rl < RECORD_LEN_MIN || rl > RECORD_LEN_MAX)
        return PC_ETOOBIG;
    if (4 + (size_t)rl > avail)
        return PC_EAGAIN;
    return PC_EBADSIG;
}

static void record_with_any_bit_flipped_fails(void **state)
{
    (void)state;
    pc_wire_keys tx, rx;
    link_keys(&tx, &rx);
    pc_wire_msg req = {.type = PC_MSG_REQUEST, .id = 1, .rung = 1, .seg = 2, .offset = 3, .len = 4, .due_ms = 5};
    uint8_t plain[32], rec[64];
    size_t pl = pc_wire_msg_encode(&req, plain);
    size_t n = seal_msg(&tx, rec, plain, pl);
    /* the record alone, then the record followed by enough bytes for any length within the limits */
    uint8_t *big = malloc(PC_WIRE_RECORD_MAX);
    assert_non_null(big);
    int seen_toobig = 0, seen_again = 0, seen_badsig = 0;
    for (size_t bit = 0; bit < n * 8; bit++) {
        uint8_t w[64];
        memcpy(w, rec, n);
        w[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        uint32_t rl = rd32(w);
        /* a flip in the length field changes the length: PC_ETOOBIG past a limit, PC_EAGAIN when it
         * now reaches past the bytes there, PC_EBADSIG otherwise (the length is authenticated);
         * a flip in the ciphertext or the tag: PC_EBADSIG */
        int want = bit < 32 ? expected_for_length(rl, n) : PC_EBADSIG;
        seen_toobig += want == PC_ETOOBIG;
        seen_again += want == PC_EAGAIN;
        seen_badsig += want == PC_EBADSIG;
        pc_wire_keys k = rx;
        uint8_t *msg;
        size_t mlen, used;
        assert_int_equal(pc_wire_open(&k, w, n, &msg, &mlen, &used), want);
        assert_int_equal(k.rx_n, 0); /* a failure does not use up the counter */

        memcpy(big, rec, n);
        big[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        for (size_t i = n; i < PC_WIRE_RECORD_MAX; i++)
            big[i] = (uint8_t)i;
        want = bit < 32 ? expected_for_length(rl, PC_WIRE_RECORD_MAX) : PC_EBADSIG;
        assert_true(want != PC_EAGAIN);
        assert_int_equal(pc_wire_open(&k, big, PC_WIRE_RECORD_MAX, &msg, &mlen, &used), want);
        assert_int_equal(k.rx_n, 0);
    }
    assert_true(seen_toobig > 0 && seen_again > 0 && seen_badsig > 0);

    /* the untouched record still opens with the same keys */
    uint8_t *msg;
    size_t mlen, used;
    assert_int_equal(pc_wire_open(&rx, rec, n, &msg, &mlen, &used), 0);
    assert_memory_equal(msg, plain, pl);
    free(big);
}

static void replayed_record_fails(void **state)
{
    (void)state;
    pc_wire_keys tx, rx;
    link_keys(&tx, &rx);
    uint8_t plain[] = {PC_MSG_CANCEL, 0, 0, 0, 9};
    uint8_t r1[32], copy[32], r2[32], *msg;
    size_t mlen, used;
    size_t n1 = seal_msg(&tx, r1, plain, sizeof(plain));
    memcpy(copy, r1, n1);
    assert_int_equal(pc_wire_open(&rx, r1, n1, &msg, &mlen, &used), 0);
    assert_int_equal(pc_wire_open(&rx, copy, n1, &msg, &mlen, &used), PC_EBADSIG); /* the same bytes again */
    assert_int_equal(rx.rx_n, 1);
    /* the next genuine record still opens */
    size_t n2 = seal_msg(&tx, r2, plain, sizeof(plain));
    assert_memory_not_equal(r2, copy, n2); /* same message, another nonce */
    assert_int_equal(pc_wire_open(&rx, r2, n2, &msg, &mlen, &used), 0);
    assert_memory_equal(msg, plain, sizeof(plain));
}

static void reordered_or_reflected_records_fail(void **state)
{
    (void)state;
    pc_wire_keys tx, rx;
    link_keys(&tx, &rx);
    uint8_t p1[] = {PC_MSG_BYE, 1}, p2[] = {PC_MSG_BYE, 2};
    uint8_t r1[32], r2[32], r2copy[32], *msg;
    size_t mlen, used;
    size_t n1 = seal_msg(&tx, r1, p1, sizeof(p1));
    size_t n2 = seal_msg(&tx, r2, p2, sizeof(p2));
    memcpy(r2copy, r2, n2);
    assert_int_equal(pc_wire_open(&rx, r2, n2, &msg, &mlen, &used), PC_EBADSIG); /* second before first */
    assert_int_equal(pc_wire_open(&rx, r1, n1, &msg, &mlen, &used), 0);
    assert_memory_equal(msg, p1, 2);
    assert_int_equal(pc_wire_open(&rx, r2copy, n2, &msg, &mlen, &used), 0);
    assert_memory_equal(msg, p2, 2);

    /* a record sent back to its sender does not open: each direction has its own key */
    pc_wire_keys self = tx;
    self.rx_n = tx.tx_n; /* the counter the next record is sealed with */
    uint8_t r3[32], r3a[32], r3b[32];
    size_t n3 = seal_msg(&tx, r3, p1, sizeof(p1));
    memcpy(r3a, r3, n3); /* copies first: a failed open may wipe the record in place */
    memcpy(r3b, r3, n3);
    assert_int_equal(pc_wire_open(&self, r3, n3, &msg, &mlen, &used), PC_EBADSIG);
    /* nor on another link */
    pc_wire_keys otx, orx;
    link_keys(&otx, &orx);
    orx.rx_n = rx.rx_n;
    assert_int_equal(pc_wire_open(&orx, r3a, n3, &msg, &mlen, &used), PC_EBADSIG);
    /* where it belongs it does */
    assert_int_equal(pc_wire_open(&rx, r3b, n3, &msg, &mlen, &used), 0);
    assert_memory_equal(msg, p1, 2);
}

static void truncated_records_need_more(void **state)
{
    (void)state;
    pc_wire_keys tx, rx;
    link_keys(&tx, &rx);
    pc_wire_range r[4] = {{0, 1, 2}, {1, 3, 4}, {2, 5, 6}, {3, 7, 8}};
    uint8_t plain[64], rec[96], *msg;
    size_t mlen, used;
    size_t pl = pc_wire_have_encode(r, 4, plain);
    size_t n = seal_msg(&tx, rec, plain, pl);
    for (size_t len = 0; len < n; len++) { /* each prefix in an exact allocation */
        uint8_t *p = exact_copy(rec, len);
        assert_int_equal(pc_wire_open(&rx, p, len, &msg, &mlen, &used), PC_EAGAIN);
        exact_free(p);
    }
    assert_int_equal(rx.rx_n, 0);
    uint8_t *p = exact_copy(rec, n);
    assert_int_equal(pc_wire_open(&rx, p, n, &msg, &mlen, &used), 0);
    assert_int_equal(used, n);
    assert_memory_equal(msg, plain, pl);
    exact_free(p);

    /* the largest record: some prefixes, including the last byte missing */
    uint8_t *big = malloc(PC_WIRE_RECORD_MAX);
    assert_non_null(big);
    memset(big + 4, 0, PC_WIRE_PLAIN_MAX);
    big[4] = PC_MSG_DATA;
    n = pc_wire_seal(&tx, big, PC_WIRE_PLAIN_MAX);
    assert_int_equal(n, PC_WIRE_RECORD_MAX);
    const size_t cuts[] = {0, 1, 3, 4, 5, 21, 4096, PC_WIRE_RECORD_MAX - 17, PC_WIRE_RECORD_MAX - 16,
                           PC_WIRE_RECORD_MAX - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        p = exact_copy(big, cuts[i]);
        assert_int_equal(pc_wire_open(&rx, p, cuts[i], &msg, &mlen, &used), PC_EAGAIN);
        exact_free(p);
    }
    p = exact_copy(big, n);
    assert_int_equal(pc_wire_open(&rx, p, n, &msg, &mlen, &used), 0);
    assert_int_equal(mlen, PC_WIRE_PLAIN_MAX);
    assert_int_equal(used, PC_WIRE_RECORD_MAX);
    exact_free(p);
    free(big);
}

static void record_lengths_outside_limits_are_too_big(void **state)
{
    (void)state;
    pc_wire_keys tx, rx;
    link_keys(&tx, &rx);
    uint8_t w[64];
    memset(w, 0xab, sizeof(w));
    uint8_t *msg;
    size_t mlen, used;
    const uint32_t bad[] = {0, 1, 15, RECORD_LEN_MIN - 1, RECORD_LEN_MAX + 1, RECORD_LEN_MAX + 2, 0x7fffffffu,
                            0x80000000u, UINT32_MAX};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        wr32(w, bad[i]);
        /* refused with just the length field, and with more bytes there */
        assert_int_equal(pc_wire_open(&rx, w, 4, &msg, &mlen, &used), PC_ETOOBIG);
        assert_int_equal(pc_wire_open(&rx, w, sizeof(w), &msg, &mlen, &used), PC_ETOOBIG);
    }
    /* the limits themselves are lengths to wait for */
    wr32(w, RECORD_LEN_MIN);
    assert_int_equal(pc_wire_open(&rx, w, 4, &msg, &mlen, &used), PC_EAGAIN);
    assert_int_equal(pc_wire_open(&rx, w, 4 + RECORD_LEN_MIN - 1, &msg, &mlen, &used), PC_EAGAIN);
    assert_int_equal(pc_wire_open(&rx, w, 4 + RECORD_LEN_MIN, &msg, &mlen, &used), PC_EBADSIG); /* forged */
    wr32(w, RECORD_LEN_MAX);
    assert_int_equal(pc_wire_open(&rx, w, sizeof(w), &msg, &mlen, &used), PC_EAGAIN);
    assert_int_equal(rx.rx_n, 0);
}

static void back_to_back_records_open_one_after_the_other(void **state)
{
    (void)state;
    pc_wire_keys tx, rx;
    link_keys(&tx, &rx);
    uint8_t *buf = malloc(4096);
    assert_non_null(buf);
    uint8_t p1[32], p2[1009], p3[32];
    pc_wire_msg ping = {.type = PC_MSG_PING, .nonce = 1}, bye = {.type = PC_MSG_BYE, .reason = 0};
    size_t l1 = pc_wire_msg_encode(&ping, p1);
    size_t l2 = pc_wire_data_header(5, 1000, p2);
    memset(p2 + l2, 0x33, sizeof(p2) - l2);
    l2 = sizeof(p2);
    size_t l3 = pc_wire_msg_encode(&bye, p3);
    size_t n1 = seal_msg(&tx, buf, p1, l1);
    size_t n2 = seal_msg(&tx, buf + n1, p2, l2);
    size_t n3 = seal_msg(&tx, buf + n1 + n2, p3, l3);
    size_t total = n1 + n2 + n3;

    /* first with the third record cut short */
    uint8_t *msg;
    size_t mlen, used, off = 0;
    const uint8_t *plains[] = {p1, p2, p3};
    const size_t lens[] = {l1, l2, l3}, recs[] = {n1, n2, n3};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pc_wire_open(&rx, buf + off, total - 1 - off, &msg, &mlen, &used), 0);
        assert_int_equal(used, recs[i]);
        assert_int_equal(mlen, lens[i]);
        assert_ptr_equal(msg, buf + off + 4);
        assert_memory_equal(msg, plains[i], lens[i]);
        off += used;
    }
    assert_int_equal(pc_wire_open(&rx, buf + off, total - 1 - off, &msg, &mlen, &used), PC_EAGAIN);
    /* then the rest arrives */
    assert_int_equal(pc_wire_open(&rx, buf + off, total - off, &msg, &mlen, &used), 0);
    assert_int_equal(used, n3);
    assert_memory_equal(msg, p3, l3);
    off += used;
    assert_int_equal(off, total);
    assert_int_equal(pc_wire_open(&rx, buf + off, 0, &msg, &mlen, &used), PC_EAGAIN);
    assert_int_equal(rx.rx_n, 3);
    free(buf);
}

/* ---- messages ---- */

static void fixed_messages_round_trip(void **state)
{
    (void)state;
    const pc_wire_msg ins[] = {
        {.type = PC_MSG_PING, .nonce = 0x0102030405060708u},
        {.type = PC_MSG_PONG, .nonce = UINT64_MAX},
        {.type = PC_MSG_REQUEST, .id = 0x11223344, .rung = 0xfe, .seg = 999999, .offset = 0xa0b0c0d0,
         .len = 131072, .due_ms = PC_WIRE_NO_DEADLINE},
        {.type = PC_MSG_REFUSE, .id = 77, .reason = PC_WIRE_REFUSE_NOT_HELD},
        {.type = PC_MSG_CANCEL, .id = UINT32_MAX},
        {.type = PC_MSG_BYE, .reason = 200},
    };
    const size_t lens[] = {9, 9, 22, 6, 5, 2};
    for (size_t i = 0; i < sizeof(ins) / sizeof(ins[0]); i++) {
        uint8_t out[32];
        memset(out, 0xee, sizeof(out));
        size_t n = pc_wire_msg_encode(&ins[i], out);
        assert_int_equal(n, lens[i]);
        assert_int_equal(out[0], ins[i].type);
        pc_wire_msg m;
        assert_int_equal(pc_wire_msg_decode(out, n, &m), 0);
        assert_int_equal(m.type, ins[i].type);
        assert_int_equal(m.nonce, ins[i].nonce);
        assert_int_equal(m.id, ins[i].id);
        assert_int_equal(m.rung, ins[i].rung);
        assert_int_equal(m.seg, ins[i].seg);
        assert_int_equal(m.offset, ins[i].offset);
        assert_int_equal(m.len, ins[i].len);
        assert_int_equal(m.due_ms, ins[i].due_ms);
        assert_int_equal(m.reason, ins[i].reason);
        assert_null(m.data);
        assert_null(m.have);
        /* re-encoding gives the same bytes */
        uint8_t again[32];
        assert_int_equal(pc_wire_msg_encode(&m, again), n);
        assert_memory_equal(again, out, n);
    }
    /* big-endian on the wire */
    uint8_t out[32];
    assert_int_equal(pc_wire_msg_encode(&ins[0], out), 9);
    assert_memory_equal(out, "\x01\x01\x02\x03\x04\x05\x06\x07\x08", 9);
    assert_int_equal(pc_wire_msg_encode(&ins[2], out), 22);
    assert_memory_equal(out, "\x04\x11\x22\x33\x44\xfe\x00\x0f\x42\x3f\xa0\xb0\xc0\xd0\x00\x02\x00\x00\xff\xff\xff\xff",
                        22);
    /* HAVE and DATA are not encoded here */
    pc_wire_msg have = {.type = PC_MSG_HAVE}, data = {.type = PC_MSG_DATA};
    assert_int_equal(pc_wire_msg_encode(&have, out), 0);
    assert_int_equal(pc_wire_msg_encode(&data, out), 0);
}

static void have_round_trips_from_one_to_the_most_ranges(void **state)
{
    (void)state;
    static pc_wire_range r[PC_WIRE_HAVE_MAX];
    static uint8_t out[3 + 9 * PC_WIRE_HAVE_MAX];
    for (uint32_t i = 0; i < PC_WIRE_HAVE_MAX; i++) {
        r[i].rung = (uint8_t)(i % 7);
        r[i].lo = i * 1000 + (i & 1 ? 0xff000000u : 0);
        r[i].hi = r[i].lo + (i % 3); /* lo == hi included */
    }
    r[0].lo = r[0].hi = UINT32_MAX;
    const uint32_t counts[] = {1, 2, 100, PC_WIRE_HAVE_MAX};
    for (size_t c = 0; c < 4; c++) {
        uint32_t n = counts[c];
        size_t len = pc_wire_have_encode(r, n, out);
        assert_int_equal(len, 3 + 9 * (size_t)n);
        assert_int_equal(out[0], PC_MSG_HAVE);
        assert_int_equal((uint32_t)out[1] << 8 | out[2], n);
        pc_wire_msg m;
        assert_int_equal(pc_wire_msg_decode(out, len, &m), 0);
        assert_int_equal(m.type, PC_MSG_HAVE);
        assert_int_equal(m.nhave, n);
        assert_ptr_equal(m.have, out + 3);
        for (uint32_t i = 0; i < n; i++) {
            pc_wire_range got;
            pc_wire_have_at(&m, i, &got);
            assert_int_equal(got.rung, r[i].rung);
            assert_int_equal(got.lo, r[i].lo);
            assert_int_equal(got.hi, r[i].hi);
        }
        assert_int_equal(msg_decode_exact(out, len), 0);
    }
}

/* A HAVE's ranges merged: by rung, overlapping and adjacent ones joined, others kept apart; 256 copies
 * of the whole video are one range. */
static void have_ranges_merge_by_rung(void **state)
{
    (void)state;
    static pc_wire_range r[PC_WIRE_HAVE_MAX], got[PC_WIRE_HAVE_MAX];
    static uint8_t out[3 + 9 * PC_WIRE_HAVE_MAX];
    const pc_wire_range in[] = {{1, 10, 20}, {0, 5, 5}, {1, 21, 30}, {1, 0, 3}, {0, 0, 4},
                                {1, 15, 25}, {2, 7, 7}, {0, 7, 9}, {1, 40, UINT32_MAX}, {1, 35, 39}};
    const pc_wire_range want[] = {{0, 0, 5}, {0, 7, 9}, {1, 0, 3}, {1, 10, 30}, {1, 35, UINT32_MAX}, {2, 7, 7}};
    pc_wire_msg m;
    size_t len = pc_wire_have_encode(in, sizeof(in) / sizeof(in[0]), out);
    assert_int_equal(pc_wire_msg_decode(out, len, &m), 0);
    uint32_t n = pc_wire_have_merged(&m, got);
    assert_int_equal(n, sizeof(want) / sizeof(want[0]));
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(got[i].rung, want[i].rung);
        assert_int_equal(got[i].lo, want[i].lo);
        assert_int_equal(got[i].hi, want[i].hi);
    }
    for (uint32_t i = 0; i < PC_WIRE_HAVE_MAX; i++)
        r[i] = (pc_wire_range){.rung = 3, .lo = 0, .hi = 599};
    len = pc_wire_have_encode(r, PC_WIRE_HAVE_MAX, out);
    assert_int_equal(pc_wire_msg_decode(out, len, &m), 0);
    assert_int_equal(pc_wire_have_merged(&m, got), 1);
    assert_int_equal(got[0].hi, 599);
}

static void data_round_trips_from_one_byte_to_the_most(void **state)
{
    (void)state;
    uint8_t *buf = malloc(9 + PC_WIRE_DATA_MAX);
    assert_non_null(buf);
    assert_int_equal(pc_wire_data_header(0xcafebabe, 0x01020304, buf), 9);
    assert_memory_equal(buf, "\x05\xca\xfe\xba\xbe\x01\x02\x03\x04", 9);
    for (size_t i = 0; i < PC_WIRE_DATA_MAX; i++)
        buf[9 + i] = (uint8_t)(i ^ (i >> 8));
    const size_t sizes[] = {1, 2, 1000, PC_WIRE_DATA_MAX};
    for (size_t s = 0; s < 4; s++) {
        pc_wire_msg m;
        assert_int_equal(pc_wire_msg_decode(buf, 9 + sizes[s], &m), 0);
        assert_int_equal(m.type, PC_MSG_DATA);
        assert_int_equal(m.id, 0xcafebabe);
        assert_int_equal(m.offset, 0x01020304);
        assert_ptr_equal(m.data, buf + 9); /* borrowed, not copied */
        assert_int_equal(m.dlen, sizes[s]);
        assert_int_equal(msg_decode_exact(buf, 9 + sizes[s]), 0);
    }
    free(buf);
}

static void messages_with_the_wrong_length_fail(void **state)
{
    (void)state;
    const uint8_t types[] = {PC_MSG_PING, PC_MSG_PONG, PC_MSG_REQUEST, PC_MSG_REFUSE, PC_MSG_CANCEL, PC_MSG_BYE};
    const size_t lens[] = {9, 9, 22, 6, 5, 2};
    uint8_t buf[64];
    memset(buf, 0, sizeof(buf));
    for (size_t t = 0; t < sizeof(types); t++) {
        buf[0] = types[t];
        for (size_t len = 1; len <= sizeof(buf); len++)
            assert_int_equal(msg_decode_exact(buf, len), len == lens[t] ? 0 : PC_EPARSE);
    }
    assert_int_equal(msg_decode_exact(buf, 0), PC_EPARSE); /* no type byte */
}

static void ticket_messages_carry_a_tickets_length(void **state)
{
    /* 109 + L bytes, L 1 … 64: what the ticket says is the link's to check */
    (void)state;
    uint8_t buf[1 + PC_TICKET_MAX + 2];
    memset(buf, 0x55, sizeof(buf));
    buf[0] = PC_MSG_TICKET;
    for (size_t body = 0; body <= PC_TICKET_MAX + 1; body++)
        assert_int_equal(msg_decode_exact(buf, 1 + body), body >= 110 && body <= 173 ? 0 : PC_EPARSE);
    pc_wire_msg m;
    assert_int_equal(pc_wire_msg_decode(buf, 1 + 120, &m), 0);
    assert_int_equal(m.type, PC_MSG_TICKET);
    assert_ptr_equal(m.data, buf + 1);
    assert_int_equal(m.dlen, 120);
}

static void unknown_types_fail(void **state)
{
    (void)state;
    const uint8_t types[] = {0, 10, 11, 0x80, 255};
    uint8_t buf[64];
    memset(buf, 0, sizeof(buf));
    for (size_t t = 0; t < sizeof(types); t++) {
        buf[0] = types[t];
        for (size_t len = 1; len <= sizeof(buf); len++)
            assert_int_equal(msg_decode_exact(buf, len), PC_EPARSE);
    }
}

static void bad_have_fails(void **state)
{
    (void)state;
    static uint8_t buf[3 + 9 * (PC_WIRE_HAVE_MAX + 2)];
    static pc_wire_range r[PC_WIRE_HAVE_MAX + 1];
    for (uint32_t i = 0; i <= PC_WIRE_HAVE_MAX; i++)
        r[i] = (pc_wire_range){.rung = 0, .lo = i, .hi = i + 1};

    /* no ranges, with or without bytes after the count */
    memset(buf, 0, sizeof(buf));
    buf[0] = PC_MSG_HAVE;
    assert_int_equal(msg_decode_exact(buf, 1), PC_EPARSE);
    assert_int_equal(msg_decode_exact(buf, 2), PC_EPARSE);
    assert_int_equal(msg_decode_exact(buf, 3), PC_EPARSE);
    assert_int_equal(msg_decode_exact(buf, 12), PC_EPARSE);

    /* one range too many (encoded by hand: the encoder's contract stops at PC_WIRE_HAVE_MAX) */
    size_t len = pc_wire_have_encode(r, PC_WIRE_HAVE_MAX, buf);
    assert_int_equal(msg_decode_exact(buf, len), 0);
    buf[1] = (uint8_t)((PC_WIRE_HAVE_MAX + 1) >> 8);
    buf[2] = (uint8_t)(PC_WIRE_HAVE_MAX + 1);
    buf[len] = 0; /* rung */
    wr32(buf + len + 1, 1);
    wr32(buf + len + 5, 2);
    assert_int_equal(msg_decode_exact(buf, len + 9), PC_EPARSE);
    buf[1] = buf[2] = 0xff; /* 65535 ranges */
    assert_int_equal(msg_decode_exact(buf, len + 9), PC_EPARSE);

    /* a count that does not match the bytes */
    len = pc_wire_have_encode(r, 3, buf);
    for (size_t l = 1; l < len + 20; l++)
        assert_int_equal(msg_decode_exact(buf, l), l == len ? 0 : PC_EPARSE);

    /* lo > hi in any one range, even by one, fails; lo == hi is fine */
    const pc_wire_range good[3] = {{0, 5, 5}, {1, 0, UINT32_MAX}, {2, 10, 20}};
    const pc_wire_range bads[] = {{0, 6, 5}, {0, UINT32_MAX, 0}, {0, 1, 0}, {0, UINT32_MAX, UINT32_MAX - 1}};
    len = pc_wire_have_encode(good, 3, buf);
    assert_int_equal(msg_decode_exact(buf, len), 0);
    for (size_t at = 0; at < 3; at++) {
        for (size_t b = 0; b < sizeof(bads) / sizeof(bads[0]); b++) {
            pc_wire_range rr[3] = {good[0], good[1], good[2]};
            rr[at] = bads[b];
            len = pc_wire_have_encode(rr, 3, buf);
            assert_int_equal(msg_decode_exact(buf, len), PC_EPARSE);
        }
    }
}

static void data_without_bytes_fails(void **state)
{
    (void)state;
    uint8_t buf[16];
    memset(buf, 0x44, sizeof(buf));
    size_t h = pc_wire_data_header(1, 2, buf);
    for (size_t len = 1; len <= h; len++) /* a cut header, or a header alone */
        assert_int_equal(msg_decode_exact(buf, len), PC_EPARSE);
    assert_int_equal(msg_decode_exact(buf, h + 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hello_round_trips_with_its_exact_length),
        cmocka_unit_test(hello_encode_refuses_ticket_lengths_outside_limits),
        cmocka_unit_test(hello_truncated_prefixes_need_more),
        cmocka_unit_test(hello_wrong_magic_fails_with_the_first_wrong_byte),
        cmocka_unit_test(hello_wrong_version_or_role_fails_as_soon_as_seen),
        cmocka_unit_test(hello_ticket_length_outside_limits_fails_before_the_ticket),
        cmocka_unit_test(handshake_authenticates_both_sides_and_derives_matching_keys),
        cmocka_unit_test(keys_derive_refuses_a_low_order_key),
        cmocka_unit_test(handshake_and_records_match_the_documented_bytes),
        cmocka_unit_test(records_round_trip_for_each_message_kind),
        cmocka_unit_test(record_with_any_bit_flipped_fails),
        cmocka_unit_test(replayed_record_fails),
        cmocka_unit_test(reordered_or_reflected_records_fail),
        cmocka_unit_test(truncated_records_need_more),
        cmocka_unit_test(record_lengths_outside_limits_are_too_big),
        cmocka_unit_test(back_to_back_records_open_one_after_the_other),
        cmocka_unit_test(fixed_messages_round_trip),
        cmocka_unit_test(have_round_trips_from_one_to_the_most_ranges),
        cmocka_unit_test(have_ranges_merge_by_rung),
        cmocka_unit_test(data_round_trips_from_one_byte_to_the_most),
        cmocka_unit_test(messages_with_the_wrong_length_fail),
        cmocka_unit_test(ticket_messages_carry_a_tickets_length),
        cmocka_unit_test(unknown_types_fail),
        cmocka_unit_test(bad_have_fails),
        cmocka_unit_test(data_without_bytes_fails),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
