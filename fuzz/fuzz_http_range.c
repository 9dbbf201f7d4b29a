/* Fuzzes Range and If-None-Match parsing; the first 8 bytes are the representation size. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pc_http_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t total;
    memcpy(&total, data, 8);
    total %= (uint64_t)1 << 40;
    const char *v = (const char *)data + 8;
    size_t n = size - 8;
    uint64_t start = 0, len = 0;
    int r = pc_http_parse_range(v, n, total, &start, &len);
    if (r == 1 && (len == 0 || start >= total || len > total - start))
        abort(); /* a satisfiable range lies inside the representation */
    if (r < -1 || r > 1)
        abort();
    (void)pc_http_etag_list_matches(v, n, "\"b2-0123456789abcdef\"", 21, 0);
    (void)pc_http_etag_list_matches(v, n, "\"b2-0123456789abcdef\"", 21, 1);
    return 0;
}
