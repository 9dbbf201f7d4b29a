/* Fuzzes the tus Upload-Metadata parser (validation and value lookup). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > PC_TUS_MAX_METADATA)
        return 0;
    const char *s = (const char *)data;
    int valid = pc_tus_metadata_valid(s, size);
    static const char *const keys[] = {"filename", "title", "", "a"};
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        char out[64];
        memset(out, 'X', sizeof(out));
        int r = pc_tus_metadata_get(s, size, keys[k], out, sizeof(out));
        if (r == 0 && memchr(out, '\0', sizeof(out)) == NULL)
            abort(); /* a found value is NUL-terminated within the buffer */
    }
    (void)valid;
    return 0;
}
