/*
 * The tracker's SQLite file (WAL): its signing key (unless --key names a
 * file), cumulative statistics per video, a time series of them, and the
 * swarm saved at a graceful shutdown so a restart neither loses statistics
 * nor counts a returning peer's bytes twice. Used from the event-loop
 * thread only.
 */
#ifndef PC_TRACKER_STORE_H
#define PC_TRACKER_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "pc_buf.h"
#include "pc_crypto.h"
#include "pc_error.h"
#include "registry.h"

typedef struct pc_tstore pc_tstore;

/* PC_EDB. */
int pc_tstore_open(const char *path, pc_tstore **out) PC_MUST_CHECK;
void pc_tstore_close(pc_tstore *s);
/* How long a save waits for another process's lock on the file (5 s after open); a save that gives up
 * fails and is retried by the caller. */
void pc_tstore_busy_wait(pc_tstore *s, int ms);
/* The key kept in the database, created on first use. PC_EDB. */
int pc_tstore_key(pc_tstore *s, uint8_t pk[PC_ED25519_PK_LEN], uint8_t sk[PC_ED25519_SK_LEN]) PC_MUST_CHECK;
/* Loads saved statistics and the saved swarm into |r| (peers as announced at |now_us|). |npeers|
 * receives how many peers came back. PC_EDB. */
int pc_tstore_load(pc_tstore *s, pc_registry *r, uint64_t now_us, size_t *npeers) PC_MUST_CHECK;
/* Forgets the saved swarm, once a start that restored it has succeeded (a crash after it must not bring
 * back peers gone since; a start that fails keeps it for the next). PC_EDB. */
int pc_tstore_forget_peers(pc_tstore *s) PC_MUST_CHECK;
/* Writes the statistics of videos marked dirty (all with |all|). PC_EDB. */
int pc_tstore_save_stats(pc_tstore *s, const pc_registry *r, int all) PC_MUST_CHECK;
/* Appends one time-series row per video with peers or changes since the last row, plus the total
 * (video ""), at unix time |t|; drops rows older than |keep_s|. PC_EDB. */
int pc_tstore_append_history(pc_tstore *s, const pc_registry *r, int64_t t, int64_t keep_s) PC_MUST_CHECK;
/* Saves every live peer (at shutdown). PC_EDB. */
int pc_tstore_save_peers(pc_tstore *s, const pc_registry *r) PC_MUST_CHECK;
typedef struct pc_history_query {
    const char *video; /* one video's rows; "" the total's; NULL all */
    int64_t since;     /* unix seconds: rows with t >= since ... */
    const char *after; /* ... or, when not NULL, t > since and the rows at since of videos after this one */
    size_t limit;      /* rows at most */
} pc_history_query;

typedef struct pc_history_page {
    int more; /* rows were left out: the next page starts after (last_t, last_video) */
    int64_t last_t;
    char last_video[PC_VIDEO_ID_MAX + 1];
} pc_history_page;

/* Appends the time series to |o| as a JSON array of rows in (t, video) order, the first q->limit that
 * match |q|. PC_EDB, PC_ENOMEM, PC_ELIMIT (|o| full). */
int pc_tstore_history(pc_tstore *s, const pc_history_query *q, pc_buf *o, pc_history_page *page) PC_MUST_CHECK;

#endif
