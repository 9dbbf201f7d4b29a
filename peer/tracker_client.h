/*
 * The peer's side of the tracker protocol (docs/protocol.md): announce bodies built from the peer's
 * state, answers parsed with the limits below, and the POST itself on the shared libcurl multi.
 */
#ifndef PC_TRACKER_CLIENT_H
#define PC_TRACKER_CLIENT_H

#include <stdint.h>

#include "pc_buf.h"
#include "pc_crypto.h"
#include "pc_http_client.h"
#include "pc_ticket.h"

#define PC_TC_PEERS_MAX 50
#define PC_TC_BANNED_MAX 8 /* keys reported banned in one announce (the tracker's limit) */
#define PC_TC_RESPONSE_MAX (256u * 1024)

typedef struct pc_tc_state {
    uint8_t peer_id[16];
    uint8_t pk[PC_ED25519_PK_LEN], sk[PC_ED25519_SK_LEN];
    uint16_t port;
    const char *addr;         /* NULL: the tracker takes the request's source address */
    const char *video, *rendition;
    const char *event;        /* "started", "periodic", "stopped" */
    const char *media;        /* the video's media token (the media URL query exp=E&sig=S), or NULL */
    uint64_t ticket_expires;  /* the expiry of the ticket we hold (0: none) */
    const char *session;      /* NULL before the first answer */
    uint32_t playhead_ms;
    int64_t need;             /* -1: none */
    int64_t have_lo, have_hi; /* -1: none */
    uint32_t up_kbps, numwant;
    int seeding;
    uint64_t bytes_cdn, bytes_p2p, bytes_up;
    uint32_t stalls, stall_ms, startup_ms, played_ms;
    const uint8_t (*banned)[PC_ED25519_PK_LEN]; /* keys banned since the last announce the tracker took */
    uint32_t nbanned;         /* at most PC_TC_BANNED_MAX */
} pc_tc_state;

typedef struct pc_tc_peer {
    uint8_t key[PC_ED25519_PK_LEN];
    char addr[46];
    uint16_t port;
    int seeding;
} pc_tc_peer;

typedef struct pc_tc_answer {
    double interval;
    uint64_t tracker_time;
    char session[64];
    uint8_t ticket[PC_TICKET_MAX];
    size_t ticket_len;        /* 0: none in this answer */
    pc_tc_peer peers[PC_TC_PEERS_MAX];
    uint32_t npeers;
} pc_tc_answer;

/* The JSON body for |s| at unix time |now_s| (the proof, on "started", signs it). PC_ENOMEM. */
int pc_tc_encode(const pc_tc_state *s, uint64_t now_s, pc_buf *out) PC_MUST_CHECK;
/* Parses a 200 answer. PC_EPARSE with a sentence in |why| (≥ 128 bytes); peers with bad fields are
 * skipped, not fatal. */
int pc_tc_decode(const char *body, size_t len, pc_tc_answer *a, char *why, size_t whylen) PC_MUST_CHECK;

typedef struct pc_tc_call pc_tc_call;
/* |status| is the HTTP status (0: no answer, -1: none, and nothing of the request was sent; |body| then
 * holds curl's sentence). */
typedef void (*pc_tc_done_fn)(void *arg, long status, const char *body, size_t len);
/* POSTs |body| to |tracker_url| + "/announce" with a |timeout_s| limit, from the local address |from|
 * when not NULL (CURLOPT_INTERFACE: "host!ADDR"). |tracker_url| has at most PC_MANIFEST_MAX_TRACKER_URL
 * characters (PC_EINVAL past it). PC_ENOMEM, PC_ENET. */
int pc_tc_post(pc_http_client *http, const char *tracker_url, const char *body, size_t len, long timeout_s,
               const char *from, pc_tc_done_fn done, void *arg, pc_tc_call **out) PC_MUST_CHECK;
/* Abandons a call in flight (no callback). */
void pc_tc_cancel(pc_http_client *http, pc_tc_call *c);

#endif
