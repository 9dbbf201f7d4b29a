/*
 * Media tokens: the query "exp=E&sig=S" that a signed-media origin hands out for one video
 * (docs/origin.md, "Signed media URLs"). S is the base64url (no padding) of
 * HMAC-SHA256(media key, "media" LF video LF E), E the expiry in unix seconds written in canonical
 * decimal. The origin checks them on /v/; a tracker given the same key (--media-key) checks them on
 * announces and issues no ticket to a viewer without one (docs/tracker.md).
 */
#ifndef PC_MEDIA_TOKEN_H
#define PC_MEDIA_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "pc_error.h"

#define PC_MEDIA_KEY_LEN 32
#define PC_MEDIA_SIG_LEN 43        /* base64url of 32 bytes, no padding */
#define PC_MEDIA_TOKEN_MAX 128     /* "exp=" + at most 19 digits + "&sig=" + 43: 71 in fact */

/* S for |video| and |exp| (NUL-terminated). Cannot fail. */
void pc_media_token_sig(const uint8_t key[PC_MEDIA_KEY_LEN], const char *video, int64_t exp,
                        char out[PC_MEDIA_SIG_LEN + 1]);
/* The key's public name: 16 hex digits of HMAC-SHA256(key, "peercdn media key id"), telling which key
 * a tracker checks tokens with without revealing it. Cannot fail. */
void pc_media_key_id(const uint8_t key[PC_MEDIA_KEY_LEN], char out[17]);
/* Checks |q| (|len| bytes, exactly "exp=E&sig=S" as issued, E canonical) for |video| at unix time
 * |now|: 0 with E in *|exp|; PC_EPARSE when not of that form; PC_EBADSIG when S is not E's signature
 * for |video| under |key|; PC_EEXPIRED when E < |now|. */
int pc_media_token_check(const uint8_t key[PC_MEDIA_KEY_LEN], const char *video, const char *q, size_t len, int64_t now,
                         int64_t *exp) PC_MUST_CHECK;

#endif
