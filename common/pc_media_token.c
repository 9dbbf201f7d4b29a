/* Media tokens (pc_media_token.h). */
#include "pc_media_token.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "pc_crypto.h"
#include "pc_num.h"

void pc_media_token_sig(const uint8_t key[PC_MEDIA_KEY_LEN], const char *video, int64_t exp,
                        char out[PC_MEDIA_SIG_LEN + 1])
{
    char msg[96];
    int n = snprintf(msg, sizeof(msg), "media\n%s\n%" PRId64, video, exp);
    if (n < 0 || (size_t)n >= sizeof(msg)) /* video ids are at most 64 characters: not reached */
        n = (int)sizeof(msg) - 1;
    uint8_t mac[PC_HMAC_LEN];
    pc_hmac_sha256(key, msg, (size_t)n, mac);
    pc_b64_encode(mac, sizeof(mac), out, 1);
}

void pc_media_key_id(const uint8_t key[PC_MEDIA_KEY_LEN], char out[17])
{
    static const char label[] = "peercdn media key id";
    uint8_t mac[PC_HMAC_LEN];
    pc_hmac_sha256(key, label, sizeof(label) - 1, mac);
    pc_hex(mac, 8, out);
}

int pc_media_token_check(const uint8_t key[PC_MEDIA_KEY_LEN], const char *video, const char *q, size_t len, int64_t now,
                         int64_t *exp)
{
    static const char sig_at[] = "&sig=";
    if (len > PC_MEDIA_TOKEN_MAX || len < 4 || memcmp(q, "exp=", 4) != 0)
        return PC_EPARSE;
    const char *amp = memchr(q + 4, '&', len - 4);
    if (amp == NULL || (size_t)(q + len - amp) != sizeof(sig_at) - 1 + PC_MEDIA_SIG_LEN ||
        memcmp(amp, sig_at, sizeof(sig_at) - 1) != 0)
        return PC_EPARSE;
    char digits[24];
    size_t nd = (size_t)(amp - (q + 4));
    if (nd == 0 || nd >= sizeof(digits))
        return PC_EPARSE;
    memcpy(digits, q + 4, nd);
    digits[nd] = '\0';
    int64_t e = 0;
    if (pc_parse_int_str(digits, 1, INT64_MAX, PC_NUM_CANONICAL, &e) != 0)
        return PC_EPARSE;
    char want[PC_MEDIA_SIG_LEN + 1];
    pc_media_token_sig(key, video, e, want);
    if (!pc_ct_equal(amp + sizeof(sig_at) - 1, want, PC_MEDIA_SIG_LEN))
        return PC_EBADSIG;
    if (e < now)
        return PC_EEXPIRED;
    *exp = e;
    return 0;
}
