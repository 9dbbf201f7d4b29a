/*
 * Who may announce as whom. A "started" announce carries a proof that the
 * peer holds its key's secret half (pc_ticket.h); the answer carries a
 * session token, BLAKE2b-128 keyed with a secret derived from the tracker
 * key over (peer id, key, video), which later announces present instead.
 * Sessions need no per-peer storage and survive a restart with the same
 * key. Verified proofs are remembered (a keyed-hash table with expiry), so a
 * peer reusing its proof costs one hash, not one signature check.
 */
#ifndef PC_TRACKER_AUTH_H
#define PC_TRACKER_AUTH_H

#include <stdint.h>

#include "announce.h"
#include "pc_crypto.h"

#define PC_PROOF_CACHE 65536

typedef struct pc_auth pc_auth;

/* NULL on ENOMEM. */
pc_auth *pc_auth_new(const uint8_t tracker_sk[PC_ED25519_SK_LEN]);
void pc_auth_free(pc_auth *a);
void pc_auth_session(const pc_auth *a, const uint8_t peer_id[PC_PEER_ID_LEN], const uint8_t key[PC_ED25519_PK_LEN],
                     const char *video, uint8_t out[PC_SESSION_LEN]);
/* 0 when |an| carries the right session (constant time), else PC_EFORBIDDEN. */
int pc_auth_check_session(const pc_auth *a, const pc_announce *an) PC_MUST_CHECK;
/* 0 when |an|'s proof is valid at |now_s| (from the cache or checked now); PC_EBADSIG, PC_EEXPIRED. */
int pc_auth_check_proof(pc_auth *a, const pc_announce *an, uint64_t now_s) PC_MUST_CHECK;

#endif
