/*
 * The announce request: what a peer tells the tracker (docs/protocol.md).
 * This codec turns a JSON body into a pc_announce with every field checked
 * against a stated limit, and rejects unknown fields, so the registry only
 * ever sees well-formed input. It borrows nothing after returning.
 */
#ifndef PC_TRACKER_ANNOUNCE_H
#define PC_TRACKER_ANNOUNCE_H

#include <stddef.h>
#include <stdint.h>

#include "pc_addr.h"
#include "pc_crypto.h"
#include "pc_error.h"
#include "pc_media_token.h"
#include "pc_ticket.h"

#define PC_ANNOUNCE_MAX_BYTES 16384 /* request body */
#define PC_PEER_ID_LEN 16           /* bytes; 32 hex digits on the wire */
#define PC_REND_ID_MAX 16
#define PC_REGION_MAX 32
#define PC_HAVE_MAX 64       /* ranges in one announce */
#define PC_SEGMENT_MAX 1000000u /* segment indices are below this */
#define PC_NUMWANT_MAX 50
#define PC_NUMWANT_DEFAULT 20
#define PC_SESSION_LEN 16
#define PC_NONE UINT32_MAX
#define PC_ANNOUNCE_BANNED_MAX 8 /* keys reported banned in one announce */

enum pc_event { PC_EV_STARTED, PC_EV_PERIODIC, PC_EV_STOPPED };

/* Cumulative since the peer started (they only grow). */
typedef struct pc_counters {
    uint64_t bytes_cdn, bytes_p2p, bytes_up;
    uint64_t stalls, stall_ms;
    uint64_t startup_ms; /* 0 until playback has started */
    uint64_t played_ms;  /* media time played */
} pc_counters;

typedef struct pc_announce {
    uint8_t peer_id[PC_PEER_ID_LEN];
    uint8_t key[PC_ED25519_PK_LEN];
    int has_addr;
    uint8_t addr[16]; /* IPv6, or IPv4 mapped into ::ffff:0:0/96 */
    uint16_t port;
    char video[PC_VIDEO_ID_MAX + 1];
    char rendition[PC_REND_ID_MAX + 1];
    uint32_t playhead_ms;
    uint32_t need;            /* next segment index the peer needs; PC_NONE when not given */
    uint32_t have_lo, have_hi; /* the held run that reaches furthest; PC_NONE when none */
    uint32_t up_kbps;         /* spare upload capacity */
    char region[PC_REGION_MAX + 1]; /* "" when not given */
    uint32_t asn;             /* 0 when not given */
    int event;                /* enum pc_event */
    uint32_t numwant;
    int seeding;              /* playback over; only serving others */
    pc_counters counters;
    int has_proof;
    uint64_t proof_ts;
    uint8_t proof_sig[PC_ED25519_SIG_LEN];
    int has_session;
    uint8_t session[PC_SESSION_LEN];
    uint32_t nbanned;         /* keys of peers this peer banned since its last announce (distrust.h) */
    uint8_t banned[PC_ANNOUNCE_BANNED_MAX][PC_ED25519_PK_LEN];
    char media[PC_MEDIA_TOKEN_MAX + 1]; /* the media URL query "exp=E&sig=S"; "" when not given */
    uint64_t ticket_expires;  /* the expiry of the ticket the peer holds; 0 when not given */
} pc_announce;

/* Why a body was refused: a stable code ("bad_json", "unknown_field", "missing_field",
 * "bad_field", "too_large") and a sentence naming the field. */
typedef struct pc_announce_error {
    const char *code;
    char message[192];
} pc_announce_error;

/* Decodes |len| bytes of JSON. 0, or PC_ETOOBIG (over PC_ANNOUNCE_MAX_BYTES, checked first) or
 * PC_EPARSE with |err| filled. */
int pc_announce_decode(const char *body, size_t len, pc_announce *out, pc_announce_error *err) PC_MUST_CHECK;
/* "started", "periodic", "stopped". Cannot fail. */
const char *pc_event_name(int event);
/* Text form of an address from pc_announce.addr (IPv4 dotted for mapped addresses); |out| holds
 * 46 bytes. Cannot fail. */
/* Region names: 1..PC_REGION_MAX of [A-Za-z0-9] and these (so they need no JSON escaping). */
#define PC_REGION_EXTRA "_.:-"
int pc_region_valid(const char *s);
/* Rendition ids: 1..PC_REND_ID_MAX of [A-Za-z0-9_-]. */
int pc_rendition_valid(const char *s);


#endif
