/*
 * What operators read: /stats as JSON and /metrics in Prometheus text
 * format, rendered from the registry's per-video statistics (docs/tracker.md
 * defines every figure).
 */
#ifndef PC_TRACKER_REPORT_H
#define PC_TRACKER_REPORT_H

#include <jansson.h>
#include <stdint.h>

#include "pc_buf.h"
#include "registry.h"

/* Reasons an announce is refused, counted for /metrics. */
#define PC_REJECT_MAP(XX)                                                                                             \
    XX(BAD_JSON, "bad_json") XX(UNKNOWN_FIELD, "unknown_field") XX(MISSING_FIELD, "missing_field")                   \
    XX(BAD_FIELD, "bad_field") XX(TOO_LARGE, "too_large") XX(RATE_LIMITED, "rate_limited") XX(BAD_PROOF, "bad_proof") \
    XX(PROOF_EXPIRED, "proof_expired") XX(BAD_SESSION, "bad_session") XX(COUNTERS_REGRESSED, "counters_regressed")    \
    XX(LIMIT_REACHED, "limit_reached") XX(UNKNOWN_VIDEO, "unknown_video")                                        \
    XX(ORIGIN_UNAVAILABLE, "origin_unavailable") XX(STOPPING, "stopping") XX(DISTRUSTED, "distrusted")           \
    XX(MEDIA_TOKEN_REQUIRED, "media_token_required") XX(BAD_MEDIA_TOKEN, "bad_media_token")                           \
    XX(MEDIA_TOKEN_EXPIRED, "media_token_expired") XX(UNKNOWN_PEER, "unknown_peer") XX(INTERNAL, "internal_error")

enum pc_reject {
#define PC_XX(sym, name) PC_REJECT_##sym,
    PC_REJECT_MAP(PC_XX)
#undef PC_XX
    PC_REJECT_N
};

/* The reject for a code string (PC_REJECT_INTERNAL when unknown). Cannot fail. */
int pc_reject_of(const char *code);

typedef struct pc_tmetrics {
    uint64_t announces[3]; /* by enum pc_event */
    uint64_t rejects[PC_REJECT_N];
    uint64_t tickets;
    uint64_t expired;
    uint64_t admit_lookups, admit_refused; /* --origin: videos asked about, and refused */
    uint64_t ban_reports;                  /* keys reported banned (announces' "banned") that were counted */
    uint64_t distrusted;                   /* verdicts: keys no longer listed in a video (distrust.h) */
    uint64_t ban_reports_dropped;          /* reports with no room in the distrust table */
    uint64_t documents;                    /* /stats and /metrics documents alive (tracker.c, respond_cached) */
} pc_tmetrics;

/* Figures derived from one video's (or the total's) statistics. */
typedef struct pc_figures {
    double offload;                /* bytes_p2p / (bytes_p2p + bytes_cdn); 0 with no bytes */
    double startup_p50_ms, startup_p95_ms;
    double viewer_hours;           /* (played + stalled) hours */
    double stalls_per_viewer_hour; /* 0 with no viewing time */
    double rebuffer_ratio;         /* stall time / (played + stalled) */
} pc_figures;

void pc_report_figures(const pc_vstats *st, pc_figures *out);
/* {"time", "total": {...}, "videos": {id: {...}}}, every video or only |only| (none if it is unknown);
 * NULL on ENOMEM. */
json_t *pc_report_stats(const pc_registry *r, int64_t now_s, const char *only);
/* Appends the Prometheus exposition; per-video series for the |top| videos with most peers. */
int pc_report_metrics(const pc_registry *r, const pc_tmetrics *m, size_t top, pc_buf *out) PC_MUST_CHECK;

#endif
