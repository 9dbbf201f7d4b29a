/* Address locality; see locality.h. */
#include "locality.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "announce.h"
#include "pc_num.h"

struct entry {
    uint8_t net[16]; /* masked address (IPv4 mapped) */
    uint32_t asn;
    uint32_t region; /* offset into names */
    uint8_t len;     /* prefix length over the 128-bit form */
};

struct pc_locality {
    struct entry *e; /* sorted by (len desc, net) */
    size_t n;
    char *names;
    size_t names_len, names_cap;
    uint8_t lens[129]; /* distinct lengths, longest first */
    size_t begin[129], end[129]; /* each length's block of entries */
    size_t nlens;
};

uint32_t pc_locality_net(const uint8_t addr[16])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    size_t keep = memcmp(addr, mapped, 12) == 0 ? 15 : 6; /* /24 of IPv4, /48 of IPv6 */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < keep; i++) {
        h ^= addr[i];
        h *= 16777619u;
    }
    return h;
}

static void mask(uint8_t a[16], unsigned len)
{
    for (unsigned i = 0; i < 16; i++) {
        unsigned bits = len >= 8 * (i + 1) ? 8 : len > 8 * i ? len - 8 * i : 0;
        a[i] &= (uint8_t)(bits == 0 ? 0 : 0xff << (8 - bits));
    }
}

static int cmp_entry(const void *x, const void *y)
{
    const struct entry *a = x, *b = y;
    if (a->len != b->len)
        return a->len > b->len ? -1 : 1;
    return memcmp(a->net, b->net, 16);
}

static int add_name(pc_locality *l, const char *s, uint32_t *off)
{
    size_t len = strlen(s) + 1;
    if (l->names_len + len > l->names_cap) {
        size_t cap = l->names_cap ? l->names_cap * 2 : 4096;
        while (cap < l->names_len + len)
            cap *= 2;
        char *n = realloc(l->names, cap);
        if (n == NULL)
            return PC_ENOMEM;
        l->names = n;
        l->names_cap = cap;
    }
    memcpy(l->names + l->names_len, s, len);
    *off = (uint32_t)l->names_len;
    l->names_len += len;
    return 0;
}

/* |why|: the part of "CIDR REGION [ASN]" to blame, on PC_EPARSE. */
static int parse_line(pc_locality *l, char *line, struct entry *e, const char **why)
{
    char cidr[64], region[PC_REGION_MAX + 2], asn_s[64];
    int64_t asn = 0;
    int end = 0;
    int n = sscanf(line, "%63s %33s %63s%n", cidr, region, asn_s, &end);
    *why = "CIDR and REGION, at least";
    if (n < 2)
        return PC_EPARSE;
    _Static_assert(PC_REGION_MAX == 32, "the message below");
    *why = "REGION: 1 to 32 of [A-Za-z0-9" PC_REGION_EXTRA "]";
    if (!pc_region_valid(region))
        return PC_EPARSE;
    /* the ASN whole, as digits: "AS64500" or "12x" is a mistake to report, not 0 or 12, and so is a token
     * longer than the buffer (its first 63 characters are not the number) */
    *why = "ASN: a decimal number up to 4294967295, without \"AS\"";
    if (n == 3 && (pc_parse_int_str(asn_s, 0, UINT32_MAX, 0, &asn) != 0 || (line[end] != '\0' && !isspace((unsigned char)line[end]))))
        return PC_EPARSE;
    *why = "CIDR: an IPv4 or IPv6 ADDRESS/PREFIX (at most 32 or 128)";
    char *slash = strchr(cidr, '/');
    if (slash == NULL)
        return PC_EPARSE;
    *slash = '\0';
    int64_t plen;
    if (pc_parse_int_str(slash + 1, 0, 128, 0, &plen) != 0)
        return PC_EPARSE;
    memset(e, 0, sizeof(*e));
    if (pc_addr_parse(cidr, e->net) != 0)
        return PC_EPARSE;
    int v4 = strchr(cidr, ':') == NULL;
    if (plen > (v4 ? 32 : 128))
        return PC_EPARSE;
    e->len = (uint8_t)(v4 ? 96 + plen : plen);
    mask(e->net, e->len);
    e->asn = (uint32_t)asn;
    return add_name(l, region, &e->region);
}

int pc_locality_load(const char *path, pc_locality **out, char *err, size_t errlen)
{
    /* O_NONBLOCK: a FIFO in the path's place does not block the open (it is refused below) */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (f == NULL) {
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return PC_EIO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > PC_LOCALITY_MAX_BYTES) {
        snprintf(err, errlen, "%s: not a regular file of at most %d MiB", path, PC_LOCALITY_MAX_BYTES >> 20);
        fclose(f);
        return PC_EIO;
    }
    pc_locality *l = calloc(1, sizeof(*l));
    size_t cap = 0;
    char line[512];
    int r = l == NULL ? PC_ENOMEM : 0;
    for (unsigned lineno = 1; r == 0 && fgets(line, sizeof(line), f) != NULL; lineno++) {
        size_t len = strlen(line);
        if (len == 0 || (line[len - 1] != '\n' && !feof(f))) {
            snprintf(err, errlen, "%s:%u: a line longer than %zu bytes, or a NUL byte", path, lineno, sizeof(line) - 2);
            r = PC_EPARSE;
            break;
        }
        char *p = line + strspn(line, " \t");
        if (*p == '#' || *p == '\n' || *p == '\0' || (p[0] == '\r' && p[1] == '\n'))
            continue; /* comments and blank lines, also with Windows line ends */
        if (l->n >= PC_LOCALITY_MAX_ENTRIES) {
            snprintf(err, errlen, "%s: more than %d entries", path, PC_LOCALITY_MAX_ENTRIES);
            r = PC_ETOOBIG;
            break;
        }
        if (l->n == cap) {
            cap = cap ? cap * 2 : 256;
            struct entry *n = realloc(l->e, cap * sizeof(*n));
            if (n == NULL) {
                r = PC_ENOMEM;
                break;
            }
            l->e = n;
        }
        const char *why = "";
        if ((r = parse_line(l, p, &l->e[l->n], &why)) != 0) {
            if (r == PC_EPARSE)
                snprintf(err, errlen, "%s:%u: expected \"CIDR REGION [ASN]\" (%s)", path, lineno, why);
            break;
        }
        l->n++;
    }
    if (r == 0 && ferror(f)) {
        snprintf(err, errlen, "cannot read %s", path);
        r = PC_EIO;
    }
    fclose(f);
    if (r != 0) {
        if (r == PC_ENOMEM)
            snprintf(err, errlen, "out of memory");
        pc_locality_free(l);
        return r;
    }
    qsort(l->e, l->n, sizeof(*l->e), cmp_entry);
    for (size_t i = 0; i < l->n; i++) {
        if (l->nlens == 0 || l->lens[l->nlens - 1] != l->e[i].len) {
            l->lens[l->nlens] = l->e[i].len;
            l->begin[l->nlens++] = i;
        }
        l->end[l->nlens - 1] = i + 1;
    }
    *out = l;
    return 0;
}

void pc_locality_free(pc_locality *l)
{
    if (l != NULL) {
        free(l->e);
        free(l->names);
        free(l);
    }
}

void pc_locality_each_region(const pc_locality *l, void (*fn)(void *ctx, const char *name), void *ctx)
{
    for (size_t off = 0; off < l->names_len; off += strlen(l->names + off) + 1)
        fn(ctx, l->names + off);
}

int pc_locality_lookup(const pc_locality *l, const uint8_t addr[16], const char **region, uint32_t *asn)
{
    for (size_t k = 0; k < l->nlens; k++) {
        struct entry key;
        memcpy(key.net, addr, 16);
        key.len = l->lens[k];
        mask(key.net, key.len);
        size_t a = l->begin[k], b = l->end[k];
        while (a < b) {
            size_t m = a + (b - a) / 2;
            if (cmp_entry(&l->e[m], &key) < 0)
                a = m + 1;
            else
                b = m;
        }
        if (a < l->end[k] && cmp_entry(&l->e[a], &key) == 0) {
            *region = l->names + l->e[a].region;
            *asn = l->e[a].asn;
            return 0;
        }
    }
    return PC_ENOENT;
}
