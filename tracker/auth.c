/* Announce authentication; see auth.h. */
#include "auth.h"

#include <stdlib.h>
#include <string.h>

struct proof_slot {
    uint64_t tag;    /* keyed hash of (key, ts, sig); 0 = empty */
    uint64_t ts;
};

struct pc_auth {
    uint8_t session_key[crypto_generichash_KEYBYTES];
    uint8_t cache_key[crypto_shorthash_KEYBYTES];
    struct proof_slot cache[PC_PROOF_CACHE];
};

pc_auth *pc_auth_new(const uint8_t tracker_sk[PC_ED25519_SK_LEN])
{
    pc_auth *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    static const char ctx[] = "peercdn session key v1";
    crypto_generichash(a->session_key, sizeof(a->session_key), (const uint8_t *)ctx, sizeof(ctx), tracker_sk, 32);
    randombytes_buf(a->cache_key, sizeof(a->cache_key));
    return a;
}

void pc_auth_free(pc_auth *a)
{
    if (a != NULL) {
        sodium_memzero(a->session_key, sizeof(a->session_key));
        free(a);
    }
}

void pc_auth_session(const pc_auth *a, const uint8_t peer_id[PC_PEER_ID_LEN], const uint8_t key[PC_ED25519_PK_LEN],
                     const char *video, uint8_t out[PC_SESSION_LEN])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, a->session_key, sizeof(a->session_key), PC_SESSION_LEN);
    crypto_generichash_update(&st, peer_id, PC_PEER_ID_LEN);
    crypto_generichash_update(&st, key, PC_ED25519_PK_LEN);
    crypto_generichash_update(&st, (const uint8_t *)video, strlen(video) + 1);
    crypto_generichash_final(&st, out, PC_SESSION_LEN);
}

int pc_auth_check_session(const pc_auth *a, const pc_announce *an)
{
    uint8_t want[PC_SESSION_LEN];
    pc_auth_session(a, an->peer_id, an->key, an->video, want);
    return an->has_session && pc_ct_equal(want, an->session, PC_SESSION_LEN) ? 0 : PC_EFORBIDDEN;
}

int pc_auth_check_proof(pc_auth *a, const pc_announce *an, uint64_t now_s)
{
    uint64_t d = an->proof_ts > now_s ? an->proof_ts - now_s : now_s - an->proof_ts;
    if (d > PC_PROOF_WINDOW_S)
        return PC_EEXPIRED;
    uint8_t buf[PC_ED25519_PK_LEN + 8 + PC_ED25519_SIG_LEN];
    memcpy(buf, an->key, PC_ED25519_PK_LEN);
    memcpy(buf + PC_ED25519_PK_LEN, &an->proof_ts, 8);
    memcpy(buf + PC_ED25519_PK_LEN + 8, an->proof_sig, PC_ED25519_SIG_LEN);
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, buf, sizeof(buf), a->cache_key);
    uint64_t tag;
    memcpy(&tag, h, 8);
    tag |= 1; /* never 0 */
    struct proof_slot *slot = &a->cache[(tag >> 1) % PC_PROOF_CACHE]; /* not the low bit: that is always 1 */
    if (slot->tag == tag && slot->ts == an->proof_ts)
        return 0;
    int r = pc_proof_verify(an->key, an->proof_ts, an->proof_sig, now_s);
    if (r == 0) {
        slot->tag = tag;
        slot->ts = an->proof_ts;
    }
    return r;
}
