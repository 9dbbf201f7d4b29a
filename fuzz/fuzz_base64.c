/* Fuzzes base64 decoding (both alphabets) into a small buffer; a decode never overruns it. */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pc_crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (sodium_init() < 0)
            abort();
        ready = 1;
    }
    uint8_t out[48];
    for (int url = 0; url <= 1; url++) {
        size_t n = 0;
        int r = pc_b64_decode((const char *)data, size, out, sizeof(out), &n, url);
        if (r == 0) {
            if (n > sizeof(out))
                abort();
            /* what decoded re-encodes to something that decodes to the same bytes */
            char enc[80];
            size_t el = pc_b64_encode(out, n, enc, url);
            uint8_t back[48];
            size_t bn = 0;
            if (pc_b64_decode(enc, el, back, sizeof(back), &bn, url) != 0 || bn != n || memcmp(back, out, n) != 0)
                abort();
        }
    }
    return 0;
}
