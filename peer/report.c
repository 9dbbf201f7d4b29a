/*
 * What a viewer sees: the status line on a terminal, and the JSON report written at exit (the contract
 * in DESIGN.md: startup_ms, stalls, stall_ms, bytes_cdn, bytes_p2p, rejected_segments, banned_peers,
 * segments [{rendition, index, source, bytes, ms}], plus what an operator wants next to it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "client_internal.h"
#include "pc_cli.h"
#include "pc_fs.h"
#include "pc_json.h"
#include "pc_log.h"

static const char *player_state(pc_player_state s)
{
    static const char *const names[] = {"idle", "starting", "playing", "stalled", "seeking", "ended", "quit"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

void pc_report_status_line(client *c)
{
    pc_engine_stats st;
    pc_engine_get_stats(c->e, pc_client_now(c), &st);
    uint64_t all = c->bytes_cdn_total + c->bytes_p2p_total;
    uint32_t nup = 0;
    for (plink *p = c->links; p != NULL; p = p->next)
        nup += p->in_engine;
    /* under 80 columns, or a terminal that wraps it scrolls a new line at each redraw: the rendition id (up
     * to 16 characters) comes last, where a long one is cut (9999.9 MB each way and 9 stalls fit with 3) */
    char line[128];
    snprintf(line, sizeof(line), "%-8s %s buf %4.0fs P2P %3.0f%% peers %2u MB dn %6.1f up %6.1f stalls %-2u %s",
             c->seeding ? "seeding" : player_state(st.player), st.cdn_mode ? "cdn" : "p2p",
             (double)pc_engine_buffer(c->e) / 1e6, all > 0 ? 100.0 * (double)c->bytes_p2p_total / (double)all : 0.0,
             nup, (double)all / 1e6, (double)st.bytes_up / 1e6, st.stalls, c->mf->renditions[c->pm.rend[st.rung]].id);
    flockfile(stderr);
    fprintf(stderr, "\r%.79s\033[K", line);
    pc_log_status_shown(1);
    funlockfile(stderr);
    fflush(stderr);
}

/* One row of the report's "segments" (docs/peer.md). */
static json_t *seg_json(const client *c, uint32_t rung, uint32_t i, const char *source, uint64_t bytes, uint64_t cdn,
                        uint64_t p2p, uint64_t ms, uint64_t at_us)
{
    json_t *s = json_object();
    json_object_set_new(s, "rendition", json_string(c->mf->renditions[c->pm.rend[rung]].id));
    json_object_set_new(s, "index", json_integer(i));
    json_object_set_new(s, "source", json_string(source));
    json_object_set_new(s, "bytes", json_integer((json_int_t)bytes));
    json_object_set_new(s, "bytes_cdn", json_integer((json_int_t)cdn));
    json_object_set_new(s, "bytes_p2p", json_integer((json_int_t)p2p));
    json_object_set_new(s, "ms", json_integer((json_int_t)ms));
    json_object_set_new(s, "at_ms", json_integer((json_int_t)(at_us / 1000)));
    return s;
}

int pc_report_write(client *c, const char *path)
{
    pc_engine_stats st;
    pc_engine_get_stats(c->e, pc_client_now(c), &st);
    json_t *o = json_object();
    json_t *segs = json_array();
    if (o == NULL || segs == NULL) {
        json_decref(o);
        json_decref(segs);
        return PC_ENOMEM;
    }
    json_object_set_new(o, "video", json_string(c->cfg->video));
    json_object_set_new(o, "mode", json_string(c->cfg->seed_mode ? "seed" : "play"));
    json_object_set_new(o, "startup_ms", st.startup_us == PC_NEVER ? json_null() : json_integer((json_int_t)(st.startup_us / 1000)));
    json_object_set_new(o, "stalls", json_integer(st.stalls));
    json_object_set_new(o, "stall_ms", json_integer((json_int_t)(st.stall_us / 1000)));
    json_object_set_new(o, "played_ms", json_integer((json_int_t)(st.played_us / 1000)));
    json_object_set_new(o, "ended", json_boolean(c->ended));
    json_object_set_new(o, "ended_at_ms", c->ended ? json_integer((json_int_t)(c->ended_at_us / 1000)) : json_null());
    json_object_set_new(o, "uptime_ms", json_integer((json_int_t)(pc_client_now(c) / 1000)));
    json_object_set_new(o, "bytes_cdn", json_integer((json_int_t)c->bytes_cdn_total));
    json_object_set_new(o, "bytes_p2p", json_integer((json_int_t)c->bytes_p2p_total));
    json_object_set_new(o, "bytes_up", json_integer((json_int_t)st.bytes_up));
    json_object_set_new(o, "rejected_segments", json_integer(st.rejected_segments));
    json_object_set_new(o, "banned_peers", json_integer(c->nbanned)); /* keys: one peer may have had several links */
    json_object_set_new(o, "suspected_peers", json_integer(st.suspects));
    json_object_set_new(o, "dropped_peers", json_integer(st.dropped));
    json_object_set_new(o, "rescues", json_integer(st.rescues));
    json_object_set_new(o, "yields", json_integer(st.yields));
    json_object_set_new(o, "rung_switches", json_integer(st.rung_switches));
    json_object_set_new(o, "announces_ok", json_integer(c->announces_ok));
    json_object_set_new(o, "announces_failed", json_integer(c->announces_failed));
    pc_blobcache_stats ss;
    pc_store_stats(c->store, &ss);
    json_object_set_new(o, "store", json_pack("{s:I, s:I, s:I, s:I, s:I}", "entries", (json_int_t)ss.entries, "bytes",
                                              (json_int_t)ss.bytes, "evictions", (json_int_t)ss.evictions,
                                              "held_out", (json_int_t)pc_store_held_out(c->store),
                                              "disk_write_failures", (json_int_t)pc_store_write_failures(c->store)));
    uint64_t kept_cdn = 0, kept_p2p = 0;
    for (uint32_t q = 0; c->seed_segs != NULL && q < c->pm.m.n_rungs; q++) /* a seed's: every rung */
        for (uint32_t i = 0; i < c->pm.m.n_segments; i++) {
            const struct seed_seg *g = &c->seed_segs[(size_t)q * c->pm.m.n_segments + i];
            if (g->from == 0)
                continue;
            uint64_t size = pc_peer_media_size(&c->pm, q, i), cdn = g->from == 1 ? size : 0;
            kept_cdn += cdn;
            json_array_append_new(segs, seg_json(c, q, i, g->from == 1 ? "cdn" : "disk", size, cdn, 0, g->ms, g->at_us));
        }
    for (uint32_t i = 0; c->seed_segs == NULL && i < c->pm.m.n_segments; i++) {
        pc_segment_info si;
        pc_engine_segment(c->e, i, &si);
        if (!si.ready)
            continue;
        kept_cdn += si.bytes_cdn;
        kept_p2p += si.bytes_p2p;
        uint64_t ms = si.ready_at > si.requested_at && si.requested_at != 0 ? (si.ready_at - si.requested_at) / 1000 : 0;
        json_array_append_new(segs, seg_json(c, si.rung, i, pc_source_name(si.source), si.bytes_cdn + si.bytes_p2p,
                                             si.bytes_cdn, si.bytes_p2p, ms, si.ready_at));
    }
    json_object_set_new(o, "kept_bytes_cdn", json_integer((json_int_t)kept_cdn));
    json_object_set_new(o, "kept_bytes_p2p", json_integer((json_int_t)kept_p2p));
    pc_hls_stats hst;
    if (pc_hls_stats_get(c, &hst) == 0) {
        json_t *h = json_object();
        json_object_set_new(h, "requests", json_integer(hst.requests));
        json_object_set_new(h, "at_once", json_integer(hst.at_once));
        json_object_set_new(h, "waited", json_integer(hst.waited));
        json_object_set_new(h, "wait_ms", json_integer((json_int_t)(hst.wait_us / 1000)));
        json_object_set_new(h, "wait_max_ms", json_integer((json_int_t)(hst.wait_max_us / 1000)));
        json_object_set_new(h, "abandoned", json_integer(hst.abandoned));
        json_object_set_new(h, "timed_out", json_integer(hst.timed_out));
        json_object_set_new(h, "refused", json_integer(hst.refused));
        json_object_set_new(h, "waiting", json_integer(hst.waiting));
        json_object_set_new(o, "hls", h);
    } else {
        json_object_set_new(o, "hls", json_null());
    }
    json_object_set_new(o, "segments", segs);
    char *txt = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (txt == NULL)
        return PC_ENOMEM;
    int rc = pc_write_file(path, txt, strlen(txt));
    free(txt);
    if (rc != 0) {
        pc_cli_error("cannot write the report %s: %s", path, pc_strerror(rc));
        return rc;
    }
    return 0;
}
