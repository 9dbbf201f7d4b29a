/*
 * Crypto wrappers over libsodium: Ed25519 keys and signatures, BLAKE2b-256
 * hashes (libgcrypt's where that is the faster), HMAC-SHA256 for pre-signed URLs,
 * hex/base64 codecs and random ids.
 * pc_crypto_init() must succeed once per process before any other call.
 */
#ifndef PC_CRYPTO_H
#define PC_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "pc_error.h"

#define PC_ED25519_PK_LEN 32
#define PC_ED25519_SK_LEN 64
#define PC_ED25519_SIG_LEN 64
#define PC_B2_LEN 32 /* BLAKE2b-256 */
#define PC_HMAC_LEN 32

/* Initialises libsodium and libgcrypt, and times the two libraries' BLAKE2b-256 to use the faster (under a
 * millisecond); PC_EINTERNAL if libsodium cannot start. Safe to call repeatedly and from any thread. */
int pc_crypto_init(void) PC_MUST_CHECK;

/*
 * Loads the Ed25519 secret key stored at |path| (64 raw bytes, mode 0600), or
 * creates one there atomically if the file does not exist. PC_EIO/PC_EPARSE on
 * unreadable or malformed files (never overwritten).
 */
int pc_ed25519_load_or_create(const char *path, uint8_t pk[PC_ED25519_PK_LEN], uint8_t sk[PC_ED25519_SK_LEN]) PC_MUST_CHECK;
/* Loads (or creates) a random secret of exactly |len| bytes (≤ 64) at |path|, mode 0600. */
int pc_secret_load_or_create(const char *path, uint8_t *key, size_t len) PC_MUST_CHECK;
/* Loads a secret of exactly |len| bytes from the regular file |path|: PC_ENOENT, PC_EPARSE (another
 * size), PC_EIO. */
int pc_secret_load(const char *path, uint8_t *key, size_t len) PC_MUST_CHECK;

void pc_ed25519_sign(const uint8_t sk[PC_ED25519_SK_LEN], const void *msg, size_t len, uint8_t sig[PC_ED25519_SIG_LEN]);
/* 0 when |sig| is valid for |msg| under |pk|, else PC_EBADSIG. */
int pc_ed25519_verify(const uint8_t pk[PC_ED25519_PK_LEN], const void *msg, size_t len,
                      const uint8_t sig[PC_ED25519_SIG_LEN]) PC_MUST_CHECK;

typedef crypto_generichash_state pc_b2_state;
void pc_b2_init(pc_b2_state *st);
void pc_b2_update(pc_b2_state *st, const void *data, size_t len);
void pc_b2_final(pc_b2_state *st, uint8_t out[PC_B2_LEN]);
/* One-shot BLAKE2b-256 in the faster library (the incremental pc_b2_* above and the file hash below are
 * libsodium's). */
void pc_blake2b256(const void *data, size_t len, uint8_t out[PC_B2_LEN]);
/* Hashes a whole file; |size| (optional) receives its length. PC_EIO/PC_ENOENT. */
int pc_blake2b256_file(const char *path, uint8_t out[PC_B2_LEN], uint64_t *size) PC_MUST_CHECK;

/* Which library computes pc_blake2b256: chosen by pc_crypto_init, or set by
 * pc_b2_use (tests and benches; PC_EINTERNAL when libgcrypt is not usable). */
typedef enum { PC_B2_SODIUM, PC_B2_GCRYPT } pc_b2_impl;
pc_b2_impl pc_b2_current(void);
int pc_b2_use(pc_b2_impl impl) PC_MUST_CHECK;
const char *pc_b2_name(pc_b2_impl impl);

void pc_hmac_sha256(const uint8_t key[32], const void *msg, size_t len, uint8_t out[PC_HMAC_LEN]);
/* Constant-time comparison; 1 when equal. */
int pc_ct_equal(const void *a, const void *b, size_t len);

/* Value of one hex digit (either case), or -1. Cannot fail. */
int pc_hex_digit(int c);
/* Lowercase hex; |out| must hold 2*len+1 bytes. */
void pc_hex(const uint8_t *in, size_t len, char *out);
/* Exactly 2*outlen hex digits expected; PC_EPARSE otherwise. */
int pc_unhex(const char *in, size_t inlen, uint8_t *out, size_t outlen) PC_MUST_CHECK;

/* Base64: standard alphabet with padding, or URL-safe without padding when |url| is set. */
size_t pc_b64_encoded_len(size_t len, int url);
/* |out| must hold pc_b64_encoded_len(len, url) bytes (includes the NUL). Returns the string length. */
size_t pc_b64_encode(const uint8_t *in, size_t len, char *out, int url);
/* Decodes into |out| (capacity |outmax|); PC_EPARSE on bad input, PC_ETOOBIG if it does not fit. */
int pc_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t outmax, size_t *outlen, int url) PC_MUST_CHECK;

/* Fills |out| with |n| random lowercase base32 characters and a NUL (|out| holds n+1). */
void pc_random_id(char *out, size_t n);

#endif
