/* Announces for the tracker's unit tests: peer n gets key and id bytes derived from n. */
#ifndef TRACKER_FIXTURE_H
#define TRACKER_FIXTURE_H

#include <stdio.h>
#include <string.h>

#include "announce.h"
#include "registry.h"

#define SEC 1000000ULL /* microseconds */

static inline pc_announce fx_announce(int n, const char *video, int event, uint32_t playhead_ms)
{
    pc_announce a;
    memset(&a, 0, sizeof(a));
    for (int i = 0; i < PC_PEER_ID_LEN; i++)
        a.peer_id[i] = (uint8_t)(n * 7 + i);
    for (int i = 0; i < PC_ED25519_PK_LEN; i++)
        a.key[i] = (uint8_t)(n * 13 + i * 3 + 1);
    memcpy(a.peer_id, &n, sizeof(n)); /* unique per n */
    memcpy(a.key, &n, sizeof(n));
    a.addr[10] = a.addr[11] = 0xff;
    a.addr[12] = 10;
    a.addr[13] = (uint8_t)(n >> 8);
    a.addr[14] = (uint8_t)n;
    a.addr[15] = 1;
    a.has_addr = 1;
    a.port = (uint16_t)(4000 + n);
    snprintf(a.video, sizeof(a.video), "%s", video);
    snprintf(a.rendition, sizeof(a.rendition), "v2");
    a.playhead_ms = playhead_ms;
    a.need = a.have_lo = a.have_hi = PC_NONE;
    a.event = event;
    a.numwant = PC_NUMWANT_DEFAULT;
    a.up_kbps = 1000;
    return a;
}

static inline pc_registry *fx_registry(uint64_t interval_us)
{
    pc_registry_config c = {.interval_us = interval_us, .max_peers = 100000, .max_swarms = 1000, .hash_seed = 42};
    return pc_registry_new(&c);
}

#endif
