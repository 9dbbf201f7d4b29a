/*
 * peercdn-tracker serve: the I/O shell around the pure registry and peer
 * selection — HTTP on libh2o/libuv, the SQLite store, timers for expiry,
 * statistics and history, and a graceful stop on SIGINT/SIGTERM that saves
 * the swarm. docs/tracker.md describes the API.
 */
#ifndef PC_TRACKER_TRACKER_H
#define PC_TRACKER_TRACKER_H

#include <stdint.h>

typedef struct pc_tracker_config {
    const char *listen;
    const char *db_path;
    const char *key_path;      /* NULL: the key lives in the database */
    const char *locality_path; /* NULL: none */
    const char *origin;        /* NULL: any video; else new videos only once this origin publishes them */
    const char *media_key_path; /* NULL: none; else the origin's media key: announces need a media token */
    double interval_s;         /* announce interval (default 30) */
    int64_t ticket_ttl_s;      /* default 3600 */
    uint32_t max_peers;        /* default 2,000,000 */
    uint32_t max_videos;       /* default 1,000,000 */
    uint32_t scan;             /* candidates examined per selection (default 512) */
    double rate;               /* announces per second per address; 0 = unlimited */
    double burst;
    double history_s;          /* time-series resolution (default 60) */
    int64_t history_keep_s;    /* default 30 days */
    uint32_t distrust_reports; /* viewers reporting a key banned before it is listed to no one (default 3; 0 off) */
} pc_tracker_config;

/* Runs until SIGINT/SIGTERM. Returns the process exit status (messages already printed). */
int pc_tracker_serve(const pc_tracker_config *cfg);
/* peercdn-tracker stats: prints GET URL/stats as a table (or raw JSON). Exit status. */
int pc_tracker_stats_cli(const char *url, const char *video, int json);

#endif
