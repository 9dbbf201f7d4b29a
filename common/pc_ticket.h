/*
 * The tracker's credentials (docs/protocol.md).
 *
 * A ticket is the tracker's Ed25519 signature binding a peer's Ed25519 key
 * to one video until an expiry time. Peers get one with their announce and
 * show it when they open a link; the other side checks it with the tracker
 * key that the origin-signed p2p.json names. Wire form (then base64url in
 * JSON):
 *
 *   "PCT1" | expires (u64 big-endian, unix seconds) | key (32) |
 *   video length (u8, 1..64) | video | signature (64)
 *
 * signed over "peercdn ticket v1" NUL followed by every byte before the
 * signature.
 *
 * A proof shows the tracker that an announcing peer holds the secret half
 * of the key it names: an Ed25519 signature over "peercdn proof v1" NUL |
 * key | ts (u64 big-endian), valid within PC_PROOF_WINDOW_S of the
 * tracker's clock. A peer may reuse one proof for all its announces in that
 * window.
 */
#ifndef PC_TICKET_H
#define PC_TICKET_H

#include <stddef.h>
#include <stdint.h>

#include "pc_crypto.h"
#include "pc_error.h"

#define PC_VIDEO_ID_MAX 64
#define PC_TICKET_MAX (4 + 8 + PC_ED25519_PK_LEN + 1 + PC_VIDEO_ID_MAX + PC_ED25519_SIG_LEN)
#define PC_PROOF_WINDOW_S 300

typedef struct pc_ticket {
    uint8_t key[PC_ED25519_PK_LEN];
    char video[PC_VIDEO_ID_MAX + 1];
    uint64_t expires; /* unix seconds */
} pc_ticket;

/* 1 when |s| (|len| bytes) is a valid video id: 1..64 of [A-Za-z0-9_-]. Cannot fail. */
int pc_video_id_valid(const char *s, size_t len);

/* Encodes and signs |t| into |out| (room for PC_TICKET_MAX bytes); returns the length, or
 * PC_EINVAL for an invalid video id. */
int pc_ticket_sign(const uint8_t sk[PC_ED25519_SK_LEN], const pc_ticket *t, uint8_t out[PC_TICKET_MAX]) PC_MUST_CHECK;
/* Decodes |len| bytes and checks the signature only. PC_EPARSE (malformed, any length other than
 * the encoded one), PC_EBADSIG. */
int pc_ticket_open(const uint8_t tracker_pk[PC_ED25519_PK_LEN], const uint8_t *in, size_t len, pc_ticket *out) PC_MUST_CHECK;
/* pc_ticket_open, then: expired at |now_s| (expires <= now_s) → PC_EEXPIRED; another video →
 * PC_EWRONGVIDEO; another key → PC_EWRONGKEY. |out| (optional) receives the ticket. */
/* The expiry written in the wire form |t| (|len| bytes) of a ticket already checked; 0 when too short to
 * hold one. Cannot fail. */
uint64_t pc_ticket_expires_of(const uint8_t *t, size_t len);
/* The checks of pc_ticket_check after the signature, on a ticket pc_ticket_open returned. */
int pc_ticket_check_opened(const pc_ticket *t, const char *video, const uint8_t key[PC_ED25519_PK_LEN],
                           uint64_t now_s) PC_MUST_CHECK;
int pc_ticket_check(const uint8_t tracker_pk[PC_ED25519_PK_LEN], const uint8_t *in, size_t len, const char *video,
                    const uint8_t key[PC_ED25519_PK_LEN], uint64_t now_s, pc_ticket *out) PC_MUST_CHECK;

/* Signs a proof of possession of |sk|'s key at |ts|. Cannot fail. */
void pc_proof_sign(const uint8_t sk[PC_ED25519_SK_LEN], uint64_t ts, uint8_t sig[PC_ED25519_SIG_LEN]);
/* 0 when |sig| proves |key| at |ts| and |ts| is within PC_PROOF_WINDOW_S of |now_s|;
 * PC_EBADSIG, PC_EEXPIRED. */
int pc_proof_verify(const uint8_t key[PC_ED25519_PK_LEN], uint64_t ts, const uint8_t sig[PC_ED25519_SIG_LEN],
                    uint64_t now_s) PC_MUST_CHECK;

#endif
