/* IP addresses in their 16-byte form (IPv4 mapped into IPv6); see pc_addr.h. */
#include "pc_addr.h"

#include <arpa/inet.h>
#include <string.h>

#include "pc_error.h"

int pc_addr_parse(const char *s, uint8_t addr[16])
{
    struct in_addr v4;
    if (inet_pton(AF_INET, s, &v4) == 1) {
        memset(addr, 0, 10);
        addr[10] = addr[11] = 0xff;
        memcpy(addr + 12, &v4, 4);
        return 0;
    }
    struct in6_addr v6;
    if (inet_pton(AF_INET6, s, &v6) == 1) {
        memcpy(addr, &v6, 16);
        return 0;
    }
    return PC_EPARSE;
}

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int pc_addr_dialable(const uint8_t addr[16])
{
    static const uint8_t zero[16] = {0};
    if (memcmp(addr, v4_mapped, 12) == 0) {
        const uint8_t *v4 = addr + 12;
        return !(v4[0] == 0 && v4[1] == 0 && v4[2] == 0 && v4[3] == 0) && (v4[0] & 0xf0) != 0xe0 &&
               !(v4[0] == 255 && v4[1] == 255 && v4[2] == 255 && v4[3] == 255);
    }
    return memcmp(addr, zero, 16) != 0 && addr[0] != 0xff;
}

int pc_addr_loopback(const uint8_t addr[16])
{
    static const uint8_t one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return memcmp(addr, v4_mapped, 12) == 0 ? addr[12] == 127 : memcmp(addr, one, 16) == 0;
}

void pc_addr_format(const uint8_t addr[16], char out[46])
{
    if (memcmp(addr, v4_mapped, 12) == 0)
        inet_ntop(AF_INET, addr + 12, out, 46);
    else
        inet_ntop(AF_INET6, addr, out, 46);
}
