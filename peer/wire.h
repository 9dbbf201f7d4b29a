/*
 * The peer-link wire format (docs/protocol.md, "Peer links"), as pure code: no sockets, no clock.
 *
 * A link opens with a plaintext handshake. Each side sends a HELLO (ephemeral X25519 key for the key
 * exchange, its tracker ticket, its upload capacity); each then sends an AUTH: its Ed25519 signature,
 * by the key its ticket names, over a hash of both HELLOs and its role. Session keys come from
 * libsodium's crypto_kx on the ephemeral keys; from then on every message travels in a record:
 *
 *   length (u32 big-endian, of what follows, 17 … PC_WIRE_RECORD_MAX - 4) |
 *   ChaCha20-Poly1305-IETF ciphertext of (type u8 | body) | tag (16)
 *
 * with a per-direction key, the nonce 0x00000000 | counter (u64 big-endian, from 0) and the length
 * field as associated data, so records cannot be reordered, replayed, cut or moved between links.
 *
 * Decoders borrow their input and say "need more" with PC_EAGAIN; every length is checked against
 * the limits below before anything is read past it.
 */
#ifndef PC_WIRE_H
#define PC_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "pc_error.h"
#include "pc_ticket.h"

#define PC_WIRE_VERSION 1
#define PC_WIRE_KX_LEN 32
#define PC_WIRE_HELLO_MAX (4 + 1 + 1 + PC_WIRE_KX_LEN + 2 + PC_TICKET_MAX + 4)
#define PC_WIRE_AUTH_LEN 64
#define PC_WIRE_DATA_MAX (128u * 1024)         /* payload of one DATA message */
#define PC_WIRE_HAVE_MAX 256                   /* ranges in one HAVE message */
#define PC_WIRE_TAG_LEN 16
#define PC_WIRE_PLAIN_MAX (1 + 8 + PC_WIRE_DATA_MAX) /* largest message: DATA */
#define PC_WIRE_RECORD_MAX (4 + PC_WIRE_PLAIN_MAX + PC_WIRE_TAG_LEN)
#define PC_WIRE_NO_DEADLINE UINT32_MAX

enum { PC_WIRE_CONNECTOR = 0, PC_WIRE_ACCEPTOR = 1 };

typedef struct pc_wire_hello {
    uint8_t role;                   /* PC_WIRE_CONNECTOR or PC_WIRE_ACCEPTOR */
    uint8_t kx_pk[PC_WIRE_KX_LEN];  /* ephemeral crypto_kx public key */
    uint8_t ticket[PC_TICKET_MAX];
    size_t ticket_len;              /* 1 … PC_TICKET_MAX */
    uint32_t up_kbps;               /* spare upload capacity, 0 = unknown */
} pc_wire_hello;

/* Encodes |h| into |out| (room for PC_WIRE_HELLO_MAX bytes); returns the length, or PC_EINVAL for a
 * ticket length outside 1 … PC_TICKET_MAX or a role other than the two. */
int pc_wire_hello_encode(const pc_wire_hello *h, uint8_t *out) PC_MUST_CHECK;
/* Decodes a HELLO from the first |len| bytes of |in|; |*used| receives its length. PC_EAGAIN: not all
 * of it yet; PC_EPARSE: bad magic, version, role or ticket length. The ticket is not checked here. */
int pc_wire_hello_decode(const uint8_t *in, size_t len, pc_wire_hello *h, size_t *used) PC_MUST_CHECK;

/* The handshake hash: BLAKE2b-256 of the connector's HELLO bytes then the acceptor's, exactly as sent. */
void pc_wire_transcript(const uint8_t *hello_c, size_t lc, const uint8_t *hello_s, size_t ls, uint8_t out[32]);
/* AUTH: Ed25519 signature over "peercdn link v1" 0x00 | role (u8) | transcript. Cannot fail. */
void pc_wire_auth_sign(const uint8_t sk[PC_ED25519_SK_LEN], uint8_t role, const uint8_t transcript[32],
                       uint8_t sig[PC_WIRE_AUTH_LEN]);
/* 0 or PC_EBADSIG. */
int pc_wire_auth_verify(const uint8_t pk[PC_ED25519_PK_LEN], uint8_t role, const uint8_t transcript[32],
                        const uint8_t sig[PC_WIRE_AUTH_LEN]) PC_MUST_CHECK;

/* Record keys, one per direction, and their counters. */
typedef struct pc_wire_keys {
    uint8_t tx[32], rx[32];
    uint64_t tx_n, rx_n;
} pc_wire_keys;

/* Derives |k| from our ephemeral key pair and the other side's public key (crypto_kx: the connector is
 * the kx client). PC_EBADSIG when the other key is unacceptable. */
int pc_wire_keys_derive(pc_wire_keys *k, uint8_t role, const uint8_t our_pk[32], const uint8_t our_sk[32],
                        const uint8_t their_pk[32]) PC_MUST_CHECK;

/* Seals a record in place: |rec| holds 4 bytes of room, then the |plen|-byte message (type first),
 * then PC_WIRE_TAG_LEN bytes of room. Returns the record length (4 + plen + 16). |plen| must be
 * 1 … PC_WIRE_PLAIN_MAX. Cannot fail. */
size_t pc_wire_seal(pc_wire_keys *k, uint8_t *rec, size_t plen);
/* Opens the record at the start of |buf| (|len| bytes available) in place. On 0, |*msg| points at the
 * message inside |buf|, |*mlen| is its length and |*used| the record's. PC_EAGAIN: incomplete;
 * PC_ETOOBIG: a length outside the limits; PC_EBADSIG: authentication failed (the record's bytes in |buf|
 * are then wiped). After either the link must close. */
int pc_wire_open(pc_wire_keys *k, uint8_t *buf, size_t len, uint8_t **msg, size_t *mlen, size_t *used) PC_MUST_CHECK;

typedef enum {
    PC_MSG_PING = 1,    /* nonce */
    PC_MSG_PONG = 2,    /* nonce */
    PC_MSG_HAVE = 3,    /* nhave ranges */
    PC_MSG_REQUEST = 4, /* id, rung, seg, offset, len, due_ms */
    PC_MSG_DATA = 5,    /* id, offset, data, dlen */
    PC_MSG_REFUSE = 6,  /* id, reason */
    PC_MSG_CANCEL = 7,  /* id */
    PC_MSG_BYE = 8,     /* reason */
    PC_MSG_TICKET = 9,  /* data, dlen: the sender's renewed ticket */
} pc_msg_type;

enum { PC_WIRE_REFUSE_BUSY = 1, PC_WIRE_REFUSE_NOT_HELD = 2, PC_WIRE_REFUSE_LATE = 3 };

/* BYE reasons */
enum {
    PC_BYE_NORMAL = 0,
    PC_BYE_FULL = 1,     /* shutting down, or no room for another link */
    PC_BYE_BANNED = 2,
    PC_BYE_PROTOCOL = 3, /* a protocol error */
};

typedef struct pc_wire_range {
    uint8_t rung;
    uint32_t lo, hi; /* inclusive, lo ≤ hi */
} pc_wire_range;

typedef struct pc_wire_msg {
    pc_msg_type type;
    uint64_t nonce;
    uint32_t id, seg, offset, len, due_ms;
    uint8_t rung, reason;
    const uint8_t *data; /* DATA, TICKET: borrowed from the decoded buffer */
    uint32_t dlen;
    const uint8_t *have; /* HAVE: nhave encoded ranges, read with pc_wire_have_at */
    uint32_t nhave;
} pc_wire_msg;

/* Decodes one message (type byte first). PC_EPARSE: unknown type, wrong length for the type, HAVE with
 * 0 or more than PC_WIRE_HAVE_MAX ranges or lo > hi, DATA with no bytes or more than PC_WIRE_DATA_MAX. */
int pc_wire_msg_decode(const uint8_t *msg, size_t len, pc_wire_msg *m) PC_MUST_CHECK;
/* The |i|th range of a decoded HAVE (i < nhave). Cannot fail. */
void pc_wire_have_at(const pc_wire_msg *m, uint32_t i, pc_wire_range *r);
/* A decoded HAVE's ranges into |out|, sorted by rung then start, overlapping and adjacent ones of a rung
 * merged; returns how many. What a HAVE costs its receiver is then bounded by the video's length, not
 * 256 times it (a peer repeating the whole video in every range). */
uint32_t pc_wire_have_merged(const pc_wire_msg *m, pc_wire_range out[PC_WIRE_HAVE_MAX]);
/* Encodes any message but DATA and HAVE into |out| (room for 32 bytes); returns its length. */
size_t pc_wire_msg_encode(const pc_wire_msg *m, uint8_t *out);
/* HAVE of |n| (1 … PC_WIRE_HAVE_MAX) ranges into |out| (room for 3 + 9n bytes); returns the length. */
size_t pc_wire_have_encode(const pc_wire_range *r, uint32_t n, uint8_t *out);
/* DATA header (9 bytes: type, id, offset) into |out|; the caller puts the bytes after it. */
size_t pc_wire_data_header(uint32_t id, uint32_t offset, uint8_t *out);

#endif
