/*
 * Locality of an address, for peers that give no region or ASN.
 *
 * Without a table, the tracker still knows one thing: peers on the same
 * /24 (IPv4) or /48 (IPv6) are close (pc_locality_net). An operator can
 * add a table (--locality FILE) of "CIDR REGION [ASN]" lines, '#' comments
 * allowed, e.g. "203.0.113.0/24 eu-west 64500"; the longest matching prefix
 * wins. Lookups cost one binary search per prefix length in the table.
 */
#ifndef PC_TRACKER_LOCALITY_H
#define PC_TRACKER_LOCALITY_H

#include <stddef.h>
#include <stdint.h>

#include "pc_error.h"

#define PC_LOCALITY_MAX_ENTRIES 1000000
#define PC_LOCALITY_MAX_BYTES (64 << 20)

typedef struct pc_locality pc_locality;

/* Hash of the address's /24 (IPv4) or /48 (IPv6). Cannot fail. */
uint32_t pc_locality_net(const uint8_t addr[16]);
/* Loads |path|: PC_EIO (also for anything but a regular file of at most PC_LOCALITY_MAX_BYTES), PC_EPARSE
 * (|err| names the line; a line holds at most 510 bytes and no NUL), PC_ETOOBIG past PC_LOCALITY_MAX_ENTRIES. */
int pc_locality_load(const char *path, pc_locality **out, char *err, size_t errlen) PC_MUST_CHECK;
void pc_locality_free(pc_locality *l);
/* Region (never NULL when found) and ASN of the longest prefix holding |addr|; 0 when found,
 * PC_ENOENT otherwise. */
int pc_locality_lookup(const pc_locality *l, const uint8_t addr[16], const char **region, uint32_t *asn);
/* Calls |fn| with each region name of the table (a name once per entry naming it). */
void pc_locality_each_region(const pc_locality *l, void (*fn)(void *ctx, const char *name), void *ctx);

#endif
