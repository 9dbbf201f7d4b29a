/* The tracker's SQLite store; see store.h. */
#include "store.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "pc_log.h"
#include "pc_sqlite.h"
#include "locality.h"

static const char *const schema[] = {
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS totals("
    " video TEXT PRIMARY KEY, bytes_cdn INTEGER NOT NULL, bytes_p2p INTEGER NOT NULL,"
    " bytes_up INTEGER NOT NULL, stalls INTEGER NOT NULL, stall_ms INTEGER NOT NULL,"
    " played_ms INTEGER NOT NULL, viewers INTEGER NOT NULL, announces INTEGER NOT NULL,"
    " startup_hist BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS history("
    " t INTEGER NOT NULL, video TEXT NOT NULL, peers INTEGER NOT NULL, bytes_cdn INTEGER NOT NULL,"
    " bytes_p2p INTEGER NOT NULL, bytes_up INTEGER NOT NULL, stalls INTEGER NOT NULL,"
    " stall_ms INTEGER NOT NULL, played_ms INTEGER NOT NULL, viewers INTEGER NOT NULL,"
    " PRIMARY KEY(video, t))",
    "DROP INDEX IF EXISTS history_t", /* replaced by history_tv, which also orders a page */
    "CREATE INDEX IF NOT EXISTS history_tv ON history(t, video)",
    "CREATE TABLE IF NOT EXISTS peers("
    " video TEXT NOT NULL, peer_id BLOB NOT NULL, key BLOB NOT NULL, addr BLOB NOT NULL,"
    " port INTEGER NOT NULL, rendition TEXT NOT NULL, playhead_ms INTEGER NOT NULL,"
    " have_lo INTEGER NOT NULL, have_hi INTEGER NOT NULL, up_kbps INTEGER NOT NULL,"
    " region TEXT NOT NULL, asn INTEGER NOT NULL, seeding INTEGER NOT NULL, ticket_exp INTEGER NOT NULL,"
    " bytes_cdn INTEGER NOT NULL, bytes_p2p INTEGER NOT NULL, bytes_up INTEGER NOT NULL,"
    " stalls INTEGER NOT NULL, stall_ms INTEGER NOT NULL, startup_ms INTEGER NOT NULL,"
    " played_ms INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO meta(key, value) VALUES('schema', '1')",
};

struct pc_tstore {
    pc_sqlite sq;
    uint64_t *last_announces; /* per swarm index, at the last history row */
    size_t nlast;
};

int pc_tstore_open(const char *path, pc_tstore **out)
{
    pc_tstore *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return PC_ENOMEM;
    int r = pc_sqlite_open(&s->sq, path, schema, sizeof(schema) / sizeof(schema[0]));
    if (r != 0) {
        free(s);
        return r;
    }
    *out = s;
    return 0;
}

void pc_tstore_busy_wait(pc_tstore *s, int ms)
{
    pc_sqlite_busy_wait(&s->sq, ms);
}

void pc_tstore_close(pc_tstore *s)
{
    if (s == NULL)
        return;
    pc_sqlite_close(&s->sq);
    free(s->last_announces);
    free(s);
}

int pc_tstore_key(pc_tstore *s, uint8_t pk[PC_ED25519_PK_LEN], uint8_t sk[PC_ED25519_SK_LEN])
{
    sqlite3_stmt *st = pc_sqlite_prep(&s->sq, "SELECT value FROM meta WHERE key = 'ed25519_sk'", "");
    if (st == NULL)
        return PC_EDB;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == PC_ED25519_SK_LEN) {
        memcpy(sk, sqlite3_column_blob(st, 0), PC_ED25519_SK_LEN);
        sqlite3_finalize(st);
        memcpy(pk, sk + PC_ED25519_SK_LEN - PC_ED25519_PK_LEN, PC_ED25519_PK_LEN);
        return 0;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW) {
        PC_LOGE("tracker", "the key stored in the database is malformed; refusing to replace it");
        return PC_EDB;
    }
    crypto_sign_keypair(pk, sk);
    return pc_sqlite_run(&s->sq, pc_sqlite_prep(&s->sq, "INSERT INTO meta(key, value) VALUES('ed25519_sk', ?)", "b",
                                                (const void *)sk, (size_t)PC_ED25519_SK_LEN));
}

static int64_t col_i(sqlite3_stmt *st, int i)
{
    int64_t v = sqlite3_column_int64(st, i);
    return v < 0 ? 0 : v;
}

static int load_totals(pc_tstore *s, pc_registry *r)
{
    sqlite3_stmt *st = pc_sqlite_prep(&s->sq,
                                      "SELECT video, bytes_cdn, bytes_p2p, bytes_up, stalls, stall_ms, played_ms,"
                                      " viewers, announces, startup_hist FROM totals",
                                      "");
    if (st == NULL)
        return PC_EDB;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *video = (const char *)sqlite3_column_text(st, 0);
        if (video == NULL || !pc_video_id_valid(video, strlen(video)))
            continue;
        pc_vstats v;
        memset(&v, 0, sizeof(v));
        v.bytes_cdn = (uint64_t)col_i(st, 1);
        v.bytes_p2p = (uint64_t)col_i(st, 2);
        v.bytes_up = (uint64_t)col_i(st, 3);
        v.stalls = (uint64_t)col_i(st, 4);
        v.stall_ms = (uint64_t)col_i(st, 5);
        v.played_ms = (uint64_t)col_i(st, 6);
        v.viewers = (uint64_t)col_i(st, 7);
        v.announces = (uint64_t)col_i(st, 8);
        if (sqlite3_column_bytes(st, 9) == (int)sizeof(v.startup_hist))
            memcpy(v.startup_hist, sqlite3_column_blob(st, 9), sizeof(v.startup_hist));
        if (pc_registry_restore_stats(r, video, &v) != 0) {
            PC_LOGW("tracker", "statistics of video %s not restored: too many videos", video);
            continue;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : PC_EDB;
}

static int load_peers(pc_tstore *s, pc_registry *r, uint64_t now_us, size_t *npeers)
{
    sqlite3_stmt *st = pc_sqlite_prep(&s->sq,
                                      "SELECT video, peer_id, key, addr, port, rendition, playhead_ms, have_lo,"
                                      " have_hi, up_kbps, region, asn, seeding, ticket_exp, bytes_cdn, bytes_p2p,"
                                      " bytes_up, stalls, stall_ms, startup_ms, played_ms FROM peers",
                                      "");
    if (st == NULL)
        return PC_EDB;
    int rc;
    *npeers = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        pc_announce a;
        memset(&a, 0, sizeof(a));
        const char *video = (const char *)sqlite3_column_text(st, 0);
        const char *rend = (const char *)sqlite3_column_text(st, 5);
        const char *region = (const char *)sqlite3_column_text(st, 10);
        /* what goes into answers unescaped is checked as an announce would be (a hand-edited or corrupt file) */
        if (video == NULL || rend == NULL || region == NULL || !pc_video_id_valid(video, strlen(video)) ||
            !pc_rendition_valid(rend) || (region[0] != '\0' && !pc_region_valid(region)) ||
            sqlite3_column_bytes(st, 1) != PC_PEER_ID_LEN || sqlite3_column_bytes(st, 2) != PC_ED25519_PK_LEN ||
            sqlite3_column_bytes(st, 3) != 16)
            continue;
        strcpy(a.video, video);
        strcpy(a.rendition, rend);
        strcpy(a.region, region);
        memcpy(a.peer_id, sqlite3_column_blob(st, 1), PC_PEER_ID_LEN);
        memcpy(a.key, sqlite3_column_blob(st, 2), PC_ED25519_PK_LEN);
        memcpy(a.addr, sqlite3_column_blob(st, 3), 16);
        a.port = (uint16_t)col_i(st, 4);
        a.playhead_ms = (uint32_t)col_i(st, 6);
        a.have_lo = (uint32_t)sqlite3_column_int64(st, 7);
        a.have_hi = (uint32_t)sqlite3_column_int64(st, 8);
        a.up_kbps = (uint32_t)col_i(st, 9);
        a.asn = (uint32_t)col_i(st, 11);
        a.seeding = (int)col_i(st, 12);
        a.counters.bytes_cdn = (uint64_t)col_i(st, 14);
        a.counters.bytes_p2p = (uint64_t)col_i(st, 15);
        a.counters.bytes_up = (uint64_t)col_i(st, 16);
        a.counters.stalls = (uint32_t)col_i(st, 17);
        a.counters.stall_ms = (uint32_t)col_i(st, 18);
        a.counters.startup_ms = (uint32_t)col_i(st, 19);
        a.counters.played_ms = (uint32_t)col_i(st, 20);
        a.event = PC_EV_PERIODIC;
        a.has_addr = 1;
        if (pc_registry_restore_peer(r, &a, pc_locality_net(a.addr), (uint32_t)col_i(st, 13), now_us) == 0)
            (*npeers)++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : PC_EDB;
}

int pc_tstore_load(pc_tstore *s, pc_registry *r, uint64_t now_us, size_t *npeers)
{
    int rc = load_totals(s, r);
    if (rc == 0)
        rc = load_peers(s, r, now_us, npeers);
    return rc;
}

int pc_tstore_forget_peers(pc_tstore *s)
{
    return pc_sqlite_exec(&s->sq, "DELETE FROM peers");
}

static int save_one(pc_tstore *s, sqlite3_stmt *st, const pc_swarm *sw)
{
    const pc_vstats *v = &sw->st;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, sw->video, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t)v->bytes_cdn);
    sqlite3_bind_int64(st, 3, (int64_t)v->bytes_p2p);
    sqlite3_bind_int64(st, 4, (int64_t)v->bytes_up);
    sqlite3_bind_int64(st, 5, (int64_t)v->stalls);
    sqlite3_bind_int64(st, 6, (int64_t)v->stall_ms);
    sqlite3_bind_int64(st, 7, (int64_t)v->played_ms);
    sqlite3_bind_int64(st, 8, (int64_t)v->viewers);
    sqlite3_bind_int64(st, 9, (int64_t)v->announces);
    sqlite3_bind_blob(st, 10, v->startup_hist, sizeof(v->startup_hist), SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        PC_LOGE("db", "cannot save statistics: %s", sqlite3_errmsg(s->sq.h));
        return PC_EDB;
    }
    return 0;
}

int pc_tstore_save_stats(pc_tstore *s, const pc_registry *r, int all)
{
    if (pc_sqlite_begin(&s->sq) != 0)
        return PC_EDB;
    sqlite3_stmt *st = pc_sqlite_prep(&s->sq,
                                      "INSERT OR REPLACE INTO totals(video, bytes_cdn, bytes_p2p, bytes_up, stalls,"
                                      " stall_ms, played_ms, viewers, announces, startup_hist)"
                                      " VALUES(?,?,?,?,?,?,?,?,?,?)",
                                      "");
    int rc = st != NULL ? 0 : PC_EDB;
    for (size_t i = 0; rc == 0 && i < pc_registry_nswarms(r); i++) {
        const pc_swarm *sw = pc_registry_swarm(r, (uint32_t)i);
        if (all || sw->dirty)
            rc = save_one(s, st, sw);
    }
    sqlite3_finalize(st);
    if (rc == 0)
        rc = pc_sqlite_commit(&s->sq);
    if (rc != 0)
        pc_sqlite_rollback(&s->sq);
    return rc;
}

static int history_row(pc_tstore *s, sqlite3_stmt *st, int64_t t, const char *video, uint64_t peers, const pc_vstats *v)
{
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, t);
    sqlite3_bind_text(st, 2, video, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (int64_t)peers);
    sqlite3_bind_int64(st, 4, (int64_t)v->bytes_cdn);
    sqlite3_bind_int64(st, 5, (int64_t)v->bytes_p2p);
    sqlite3_bind_int64(st, 6, (int64_t)v->bytes_up);
    sqlite3_bind_int64(st, 7, (int64_t)v->stalls);
    sqlite3_bind_int64(st, 8, (int64_t)v->stall_ms);
    sqlite3_bind_int64(st, 9, (int64_t)v->played_ms);
    sqlite3_bind_int64(st, 10, (int64_t)v->viewers);
    if (sqlite3_step(st) != SQLITE_DONE) {
        PC_LOGE("db", "cannot append history: %s", sqlite3_errmsg(s->sq.h));
        return PC_EDB;
    }
    return 0;
}

int pc_tstore_append_history(pc_tstore *s, const pc_registry *r, int64_t t, int64_t keep_s)
{
    size_t n = pc_registry_nswarms(r);
    if (n > s->nlast) {
        uint64_t *l = realloc(s->last_announces, n * sizeof(*l));
        if (l == NULL)
            return PC_ENOMEM;
        memset(l + s->nlast, 0xff, (n - s->nlast) * sizeof(*l)); /* new videos always get a row */
        s->last_announces = l;
        s->nlast = n;
    }
    if (pc_sqlite_begin(&s->sq) != 0)
        return PC_EDB;
    sqlite3_stmt *st = pc_sqlite_prep(&s->sq,
                                      "INSERT OR REPLACE INTO history(t, video, peers, bytes_cdn, bytes_p2p, bytes_up,"
                                      " stalls, stall_ms, played_ms, viewers) VALUES(?,?,?,?,?,?,?,?,?,?)",
                                      "");
    int rc = st != NULL ? 0 : PC_EDB;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const pc_swarm *sw = pc_registry_swarm(r, (uint32_t)i);
        const pc_vstats *v = &sw->st;
        if (sw->nmembers > 0 || v->announces != s->last_announces[i])
            rc = history_row(s, st, t, sw->video, sw->nmembers, v);
    }
    uint64_t peers, seeders;
    const pc_vstats *total = pc_registry_total(r, &peers, &seeders);
    if (rc == 0)
        rc = history_row(s, st, t, "", peers, total);
    sqlite3_finalize(st);
    if (rc == 0 && keep_s > 0)
        rc = pc_sqlite_run(&s->sq, pc_sqlite_prep(&s->sq, "DELETE FROM history WHERE t < ?", "i", t - keep_s));
    if (rc == 0)
        rc = pc_sqlite_commit(&s->sq);
    if (rc != 0) {
        pc_sqlite_rollback(&s->sq);
        return rc; /* the videos that had a row this time get one next time too */
    }
    for (size_t i = 0; i < n; i++)
        s->last_announces[i] = pc_registry_swarm(r, (uint32_t)i)->st.announces;
    return 0;
}

int pc_tstore_save_peers(pc_tstore *s, const pc_registry *r)
{
    if (pc_sqlite_begin(&s->sq) != 0)
        return PC_EDB;
    int rc = pc_sqlite_exec(&s->sq, "DELETE FROM peers");
    sqlite3_stmt *st = pc_sqlite_prep(&s->sq,
                                      "INSERT INTO peers(video, peer_id, key, addr, port, rendition, playhead_ms,"
                                      " have_lo, have_hi, up_kbps, region, asn, seeding, ticket_exp, bytes_cdn,"
                                      " bytes_p2p, bytes_up, stalls, stall_ms, startup_ms, played_ms)"
                                      " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                      "");
    if (st == NULL)
        rc = PC_EDB;
    for (size_t i = 0; rc == 0 && i < pc_registry_nswarms(r); i++) {
        const pc_swarm *sw = pc_registry_swarm(r, (uint32_t)i);
        for (uint32_t k = 0; rc == 0 && k < sw->nmembers; k++) {
            const pc_peer_rec *p = pc_registry_peer(r, sw->members[k]);
            sqlite3_reset(st);
            sqlite3_bind_text(st, 1, sw->video, -1, SQLITE_STATIC);
            sqlite3_bind_blob(st, 2, p->id, PC_PEER_ID_LEN, SQLITE_STATIC);
            sqlite3_bind_blob(st, 3, p->key, PC_ED25519_PK_LEN, SQLITE_STATIC);
            sqlite3_bind_blob(st, 4, p->addr, 16, SQLITE_STATIC);
            sqlite3_bind_int64(st, 5, p->port);
            sqlite3_bind_text(st, 6, sw->rend[p->rend], -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 7, p->playhead_ms);
            sqlite3_bind_int64(st, 8, p->have_lo);
            sqlite3_bind_int64(st, 9, p->have_hi);
            sqlite3_bind_int64(st, 10, p->up_kbps);
            sqlite3_bind_text(st, 11, pc_registry_region(r, p->region), -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 12, p->asn);
            sqlite3_bind_int64(st, 13, (p->flags & PC_PEER_SEEDING) != 0);
            sqlite3_bind_int64(st, 14, p->ticket_exp);
            sqlite3_bind_int64(st, 15, (int64_t)p->bytes_cdn);
            sqlite3_bind_int64(st, 16, (int64_t)p->bytes_p2p);
            sqlite3_bind_int64(st, 17, (int64_t)p->bytes_up);
            sqlite3_bind_int64(st, 18, p->stalls);
            sqlite3_bind_int64(st, 19, p->stall_ms);
            sqlite3_bind_int64(st, 20, p->startup_ms);
            sqlite3_bind_int64(st, 21, p->played_ms);
            if (sqlite3_step(st) != SQLITE_DONE) {
                PC_LOGE("db", "cannot save the swarm: %s", sqlite3_errmsg(s->sq.h));
                rc = PC_EDB;
            }
        }
    }
    sqlite3_finalize(st);
    if (rc == 0)
        rc = pc_sqlite_commit(&s->sq);
    if (rc != 0)
        pc_sqlite_rollback(&s->sq);
    return rc;
}

int pc_tstore_history(pc_tstore *s, const pc_history_query *q, pc_buf *o, pc_history_page *page)
{
    /* one row more than asked tells whether rows were left out; one video's rows through the primary key
     * (video, t), everyone's through history_tv */
#define HISTORY_SELECT                                                                                                 \
    "SELECT t, video, peers, bytes_cdn, bytes_p2p, bytes_up, stalls, stall_ms, played_ms, viewers FROM history"        \
    " WHERE (t > ?1 OR (t = ?1 AND (?2 IS NULL OR video > ?2)))"
    sqlite3_stmt *st =
        q->video != NULL
            ? pc_sqlite_prep(&s->sq, HISTORY_SELECT " AND video = ?3 ORDER BY t LIMIT ?4", "issi", q->since, q->after,
                             q->video, (int64_t)q->limit + 1)
            : pc_sqlite_prep(&s->sq, HISTORY_SELECT " ORDER BY t, video LIMIT ?3", "isi", q->since, q->after,
                             (int64_t)q->limit + 1);
#undef HISTORY_SELECT
    if (st == NULL)
        return PC_EDB;
    memset(page, 0, sizeof(*page));
    int rc = pc_buf_append_str(o, "[");
    int step = SQLITE_DONE;
    size_t n = 0;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *video = (const char *)sqlite3_column_text(st, 1);
        size_t vlen = video != NULL ? strlen(video) : 0;
        if (video == NULL || (vlen > 0 && !pc_video_id_valid(video, vlen)))
            continue; /* not written by us: nothing to print it as */
        if (n == q->limit) {
            page->more = 1;
            break;
        }
        uint64_t cdn = (uint64_t)col_i(st, 3), p2p = (uint64_t)col_i(st, 4);
        double bytes = (double)cdn + (double)p2p;
        page->last_t = col_i(st, 0);
        memcpy(page->last_video, video, vlen + 1);
        rc = pc_buf_printf(o,
                           "%s{\"t\":%" PRId64 ",\"video\":\"%s\",\"peers\":%" PRId64 ",\"bytes_cdn\":%" PRIu64
                           ",\"bytes_p2p\":%" PRIu64 ",\"bytes_up\":%" PRId64 ",\"offload\":%.17g,\"stalls\":%" PRId64
                           ",\"stall_ms\":%" PRId64 ",\"played_ms\":%" PRId64 ",\"viewers\":%" PRId64 "}",
                           n > 0 ? "," : "", page->last_t, video, col_i(st, 2), cdn, p2p, col_i(st, 5),
                           bytes > 0 ? (double)p2p / bytes : 0.0, col_i(st, 6), col_i(st, 7), col_i(st, 8),
                           col_i(st, 9));
        n++;
    }
    sqlite3_finalize(st);
    if (rc != 0)
        return rc;
    if (step != SQLITE_DONE && step != SQLITE_ROW)
        return PC_EDB;
    return pc_buf_append_str(o, "]");
}
