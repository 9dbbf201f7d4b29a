/* Tracker tickets and announce proofs; see pc_ticket.h. */
#include "pc_ticket.h"

#include <string.h>

static const char ticket_ctx[] = "peercdn ticket v1"; /* signed with its NUL */
static const char proof_ctx[] = "peercdn proof v1";

int pc_video_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > PC_VIDEO_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* "ctx NUL" + body, the signed message; |msg| holds sizeof(ticket_ctx) + PC_TICKET_MAX. */
static size_t ticket_message(const uint8_t *body, size_t len, uint8_t *msg)
{
    memcpy(msg, ticket_ctx, sizeof(ticket_ctx));
    memcpy(msg + sizeof(ticket_ctx), body, len);
    return sizeof(ticket_ctx) + len;
}

int pc_ticket_sign(const uint8_t sk[PC_ED25519_SK_LEN], const pc_ticket *t, uint8_t out[PC_TICKET_MAX])
{
    size_t vlen = strnlen(t->video, PC_VIDEO_ID_MAX + 1);
    if (!pc_video_id_valid(t->video, vlen))
        return PC_EINVAL;
    uint8_t *p = out;
    memcpy(p, "PCT1", 4);
    p += 4;
    put_be64(p, t->expires);
    p += 8;
    memcpy(p, t->key, PC_ED25519_PK_LEN);
    p += PC_ED25519_PK_LEN;
    *p++ = (uint8_t)vlen;
    memcpy(p, t->video, vlen);
    p += vlen;
    uint8_t msg[sizeof(ticket_ctx) + PC_TICKET_MAX];
    size_t mlen = ticket_message(out, (size_t)(p - out), msg);
    pc_ed25519_sign(sk, msg, mlen, p);
    p += PC_ED25519_SIG_LEN;
    return (int)(p - out);
}

int pc_ticket_open(const uint8_t tracker_pk[PC_ED25519_PK_LEN], const uint8_t *in, size_t len, pc_ticket *out)
{
    const size_t fixed = 4 + 8 + PC_ED25519_PK_LEN + 1;
    if (len < fixed + 1 + PC_ED25519_SIG_LEN || len > PC_TICKET_MAX || memcmp(in, "PCT1", 4) != 0)
        return PC_EPARSE;
    size_t vlen = in[fixed - 1];
    if (len != fixed + vlen + PC_ED25519_SIG_LEN || !pc_video_id_valid((const char *)in + fixed, vlen))
        return PC_EPARSE;
    uint8_t msg[sizeof(ticket_ctx) + PC_TICKET_MAX];
    size_t mlen = ticket_message(in, fixed + vlen, msg);
    if (pc_ed25519_verify(tracker_pk, msg, mlen, in + fixed + vlen) != 0)
        return PC_EBADSIG;
    out->expires = get_be64(in + 4);
    memcpy(out->key, in + 12, PC_ED25519_PK_LEN);
    memcpy(out->video, in + fixed, vlen);
    out->video[vlen] = '\0';
    return 0;
}

int pc_ticket_check(const uint8_t tracker_pk[PC_ED25519_PK_LEN], const uint8_t *in, size_t len, const char *video,
                    const uint8_t key[PC_ED25519_PK_LEN], uint64_t now_s, pc_ticket *out)
{
    pc_ticket t;
    int r = pc_ticket_open(tracker_pk, in, len, &t);
    if (r == 0)
        r = pc_ticket_check_opened(&t, video, key, now_s);
    if (r == 0 && out != NULL)
        *out = t;
    return r;
}

uint64_t pc_ticket_expires_of(const uint8_t *t, size_t len)
{
    return len >= 12 ? get_be64(t + 4) : 0;
}

int pc_ticket_check_opened(const pc_ticket *t, const char *video, const uint8_t key[PC_ED25519_PK_LEN], uint64_t now_s)
{
    if (t->expires <= now_s)
        return PC_EEXPIRED;
    if (strcmp(t->video, video) != 0)
        return PC_EWRONGVIDEO;
    if (!pc_ct_equal(t->key, key, PC_ED25519_PK_LEN))
        return PC_EWRONGKEY;
    return 0;
}

static size_t proof_message(const uint8_t key[PC_ED25519_PK_LEN], uint64_t ts, uint8_t *msg)
{
    memcpy(msg, proof_ctx, sizeof(proof_ctx));
    memcpy(msg + sizeof(proof_ctx), key, PC_ED25519_PK_LEN);
    put_be64(msg + sizeof(proof_ctx) + PC_ED25519_PK_LEN, ts);
    return sizeof(proof_ctx) + PC_ED25519_PK_LEN + 8;
}

void pc_proof_sign(const uint8_t sk[PC_ED25519_SK_LEN], uint64_t ts, uint8_t sig[PC_ED25519_SIG_LEN])
{
    uint8_t msg[sizeof(proof_ctx) + PC_ED25519_PK_LEN + 8];
    /* libsodium's secret key ends with the public key */
    size_t len = proof_message(sk + PC_ED25519_SK_LEN - PC_ED25519_PK_LEN, ts, msg);
    pc_ed25519_sign(sk, msg, len, sig);
}

int pc_proof_verify(const uint8_t key[PC_ED25519_PK_LEN], uint64_t ts, const uint8_t sig[PC_ED25519_SIG_LEN],
                    uint64_t now_s)
{
    uint64_t d = ts > now_s ? ts - now_s : now_s - ts;
    if (d > PC_PROOF_WINDOW_S)
        return PC_EEXPIRED;
    uint8_t msg[sizeof(proof_ctx) + PC_ED25519_PK_LEN + 8];
    size_t len = proof_message(key, ts, msg);
    return pc_ed25519_verify(key, msg, len, sig) == 0 ? 0 : PC_EBADSIG;
}
