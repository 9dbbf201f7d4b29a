/*
 * peercdn-peer: the viewer client. It verifies the signed manifest with the pinned origin key, drives
 * the sans-I/O engine from libuv (peer links, CDN fetches on libcurl's multi interface, the tracker,
 * a local HLS endpoint), keeps what it verified in the segment store and serves it, and writes the JSON
 * report at exit. docs/peer.md describes it for operators.
 */
#ifndef PC_CLIENT_H
#define PC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

/* Longest --origin and --tracker URL (checked by the command line; the client refuses longer ones too). */
#define PC_CLIENT_URL_MAX 900
/* Longest --media-query. */
#define PC_CLIENT_QUERY_MAX 1024

typedef struct pc_client_config {
    int seed_mode;              /* `seed`: fetch everything once, then serve */
    const char *origin;         /* http://HOST:PORT of the origin (the CDN) */
    const char *video;
    const char *tracker;        /* overrides the manifest's tracker URL (its key still comes from the manifest) */
    const char *listen;         /* peer port, "HOST:PORT" */
    const char *announce_addr;  /* address announced (default: what the tracker sees) */
    const char *hls_listen;     /* local HLS endpoint, or NULL */
    const char *rendition;      /* "auto" or a rendition id */
    const char *report;         /* JSON report path, or NULL */
    const char *state_dir;      /* pinned origin keys */
    const char *cache_dir;      /* disk copy of the segment store, or NULL */
    const char *origin_key;     /* base64 origin key given on the command line, or NULL */
    const char *media_query;    /* appended to every /v/ URL fetched from the origin (a signed-media origin's
                                 * "exp=E&sig=S"), without the '?'; NULL: none */
    const char *media_query_file; /* or read from this file, and again whenever it changes (renewed tokens) */
    uint64_t up_kbps, down_kbps;/* 0: no cap */
    double seed_after_s;        /* keep serving this long after playback ends */
    double hls_linger_s;        /* with hls_listen: exit once the local player has been quiet this long; 0 never */
    double watch_s;             /* play: quit after this long (0: to the end) */
    double max_wait_s;          /* play: give up after waiting this long for data (0: never; default 120) */
    size_t mem_cap;             /* segment store in memory */
    int clock_shift_s;          /* tests: seconds added to this machine's clock (PEERCDN_TEST_CLOCK_SHIFT_S) */
    uint32_t max_links;
    int status_line;            /* print the status line (terminal) */
    int no_upload;              /* serve nothing */
    uint64_t seed;              /* engine randomness (0: from the clock) */
    int corrupt_uploads;        /* test aid (PEERCDN_TEST_CORRUPT_UPLOADS=1): a malicious peer that flips a
                                 * byte of everything it serves, for the integration tests */
} pc_client_config;

void pc_client_config_default(pc_client_config *c);
/* 1 when |q| can be appended to a URL as its query: 1 to PC_CLIENT_QUERY_MAX characters, none of them
 * a space, a control character, '#' or one of "<>\"\\^`{|}' (which would have to be percent-encoded). */
int pc_client_query_valid(const char *q);
/* Runs until playback ends (and seeding is over), or SIGINT/SIGTERM. Returns the process exit code;
 * failures print one line on stderr. */
int pc_client_run(const pc_client_config *cfg);

#endif
