/*
 * A peer link: one TCP connection on a libuv loop carrying the wire protocol (wire.h). The link runs
 * the handshake (tickets checked against the tracker key for this video, possession of the ticket's
 * key proven by signature, session keys by key exchange), then seals and opens records, and hands
 * decoded messages to its owner. It keeps itself alive with PINGs (reporting the RTT) and closes on a
 * silent peer, a bad record, a protocol error or a handshake that takes too long.
 *
 * The owner watches pc_link_queued() and stops feeding a link whose queue is above its mark
 * (on_writable tells when it drained). What the link answers by itself, and what the owner answers to
 * requests (refusals, pongs), is not held back, so a peer that keeps asking without reading would grow
 * the queue without end: a link whose queued writes would take more than PC_LINK_QUEUE_MAX bytes of
 * memory is closed (PC_ELIMIT) instead. A peer that asked and then stops reading is closed too: the
 * owner's upload slots would wait for it for good (a link whose queue has not been empty for
 * PC_LINK_SLOW_MS while the other side acknowledged less than PC_LINK_SLOW_BYTES). Reads pause while
 * the shared download bucket is in debt.
 */
#ifndef PC_LINK_H
#define PC_LINK_H

#include <stdint.h>

#include <uv.h>

#include "tbucket.h"
#include "wire.h"

#define PC_LINK_HANDSHAKE_MS 10000
#define PC_LINK_PING_MS 5000
#define PC_LINK_IDLE_MS 30000
#define PC_LINK_LOW_MARK (512u * 1024)
/* Queued writes, with their bookkeeping: the owner's own DATA stops at its mark (PC_CLIENT_HIGH_MARK,
 * 1 MiB) plus one record, so what lies beyond is answers to a peer that does not read. Small, because
 * each link may hold it: 72 links (peercdn-peer's default) × 2 MiB. */
#define PC_LINK_QUEUE_MAX (2u * 1024 * 1024)
#define PC_LINK_SLOW_MS 15000
#define PC_LINK_SLOW_BYTES (64u * 1024) /* in PC_LINK_SLOW_MS: 35 kbit/s, a quarter of the lowest rung */

typedef struct pc_link pc_link;

/* What a link proves and checks; owned by the caller, read at each handshake (tickets get renewed). */
typedef struct pc_link_identity {
    uint8_t pk[PC_ED25519_PK_LEN], sk[PC_ED25519_SK_LEN];
    uint8_t ticket[PC_TICKET_MAX];
    size_t ticket_len;                  /* 0: no ticket yet, links cannot open */
    uint8_t tracker_pk[PC_ED25519_PK_LEN];
    char video[PC_VIDEO_ID_MAX + 1];
    uint32_t up_kbps;
    pc_tbucket *down;                   /* shared download cap (NULL: none) */
    uint64_t t0_us;                     /* the owner's clock: the bucket's "now" is uv_hrtime() µs − t0_us */
    int64_t skew_s;                     /* the tracker's clock − ours (seconds): tickets expire on its clock */
    int64_t shift_s;                    /* tests: added to time(NULL), a machine whose clock is off */
} pc_link_identity;

/* Unix seconds on this machine's clock (time(NULL) + shift_s). */
int64_t pc_link_local_now(const pc_link_identity *id);
/* Unix seconds on the tracker's clock, as far as |id| knows it (local + skew_s). */
uint64_t pc_link_wall_now(const pc_link_identity *id);

typedef struct pc_link_callbacks {
    /* The handshake succeeded: the other side holds |key| (its ticket's key). Return 0 to keep the link,
     * a BYE reason (PC_BYE_FULL, PC_BYE_BANNED, ...) to close it with that, -1 to close it with
     * PC_BYE_NORMAL. */
    int (*on_up)(void *arg, pc_link *l, const uint8_t key[PC_ED25519_PK_LEN], uint32_t up_kbps);
    void (*on_msg)(void *arg, pc_link *l, const pc_wire_msg *m);
    /* The write queue fell below PC_LINK_LOW_MARK. */
    void (*on_writable)(void *arg, pc_link *l);
    void (*on_rtt)(void *arg, pc_link *l, uint64_t rtt_us);
    /* The link is gone (|err| says why: 0 for a local close); |l| is freed after this returns. */
    void (*on_close)(void *arg, pc_link *l, int err, const char *why);
} pc_link_callbacks;

/* Connects to |addr|; |expect_key| (optional) is the key the tracker listed for it, which its ticket
 * must name. PC_ENOMEM, PC_EINVAL (address). */
int pc_link_connect(uv_loop_t *loop, const struct sockaddr *addr, const uint8_t *expect_key,
                    const pc_link_identity *id, const pc_link_callbacks *cb, void *arg, pc_link **out) PC_MUST_CHECK;
/* Accepts a pending connection on |server|. PC_ENOMEM, PC_EIO. */
int pc_link_accept(uv_stream_t *server, const pc_link_identity *id, const pc_link_callbacks *cb, void *arg,
                   pc_link **out) PC_MUST_CHECK;
/* Seals and queues a message of |len| bytes (1 … PC_WIRE_PLAIN_MAX, type byte first). PC_ECANCELED once
 * the link is closing, PC_EINVAL for a bad length, PC_ENOMEM. A write error closes the link, and its
 * on_close cleans up, so callers may ignore the result where nothing else depends on it. */
int pc_link_send(pc_link *l, const uint8_t *msg, size_t len);
/* Queues a DATA message: |dlen| (1 … PC_WIRE_DATA_MAX) bytes of request |id| at |offset|. As above. */
int pc_link_send_data(pc_link *l, uint32_t id, uint32_t offset, const uint8_t *data, uint32_t dlen);
/* Bytes queued and not yet written. */
size_t pc_link_queued(const pc_link *l);
/* Sends BYE(|reason|) if up, then closes; on_close follows from the loop. Idempotent. */
void pc_link_close(pc_link *l, uint8_t reason);
/* Whether the other side's HELLO has been checked (its ticket verified): the handshake waits for its AUTH
 * at most. */
int pc_link_hello_taken(const pc_link *l);
/* Sends the identity's ticket (TICKET) when it expires later than the one this link's other side has seen
 * (the owner calls it for every link when the tracker renews it). A link ends when the other side's ticket
 * expires, unless a renewed one came. */
void pc_link_send_ticket(pc_link *l);
/* The key the other side's checked HELLO named (its ticket's), or NULL before. */
const uint8_t *pc_link_hello_key(const pc_link *l);
/* Milliseconds since the link was made (accepted or dialled). */
uint64_t pc_link_age_ms(const pc_link *l);
/* Resumes reading after the download bucket recovered (the owner's timer calls it). */
void pc_link_resume(pc_link *l);
int pc_link_is_up(const pc_link *l);
int pc_link_is_connector(const pc_link *l);
const char *pc_link_peer_name(const pc_link *l); /* "HOST:PORT" */
void pc_link_set_user(pc_link *l, void *user);
void *pc_link_user(const pc_link *l);

#endif
