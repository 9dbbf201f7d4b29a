/* Fuzzes the p2p.json parser and the signature check on arbitrary bytes. */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pc_manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (sodium_init() < 0)
            abort();
        ready = 1;
    }
    pc_manifest *m = NULL;
    if (pc_manifest_parse((const char *)data, size, &m) == 0) {
        /* a parsed manifest keeps its promises */
        if (m->nrenditions == 0 || m->nrenditions > PC_MANIFEST_MAX_RENDITIONS)
            abort();
        for (size_t i = 0; i < m->nrenditions; i++) {
            const pc_mf_rendition *r = &m->renditions[i];
            if (r->nsegments == 0 || r->nsegments > PC_MANIFEST_MAX_SEGMENTS || r->init.size == 0 ||
                strlen(r->init.url) > PC_MANIFEST_MAX_URL || strstr(r->init.url, "..") != NULL)
                abort();
            for (size_t s = 0; s < r->nsegments; s++)
                if (r->segments[s].size == 0 || r->segments[s].size > PC_MANIFEST_MAX_SEGMENT_BYTES ||
                    r->segments[s].duration <= 0)
                    abort();
        }
        pc_manifest_free(m);
    }
    uint8_t pk[PC_ED25519_PK_LEN];
    memset(pk, 7, sizeof(pk));
    if (size > 88 && pc_manifest_verify(pk, (const char *)data + 88, size - 88, (const char *)data, 88) == 0)
        abort(); /* nobody holds the secret key for this public key */
    return 0;
}
