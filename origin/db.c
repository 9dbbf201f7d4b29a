/* SQLite metadata store and task queue; see db.h. */
#include "db.h"

#include <inttypes.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_buf.h"
#include "pc_log.h"
#include "pc_sqlite.h"

int pc_id_valid(const char *s, size_t len)
{
    if (len != PC_ID_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '2' && s[i] <= '7')))
            return 0;
    return 1;
}

struct pc_db {
    pc_sqlite sq;
    int claim_blocked; /* claims are failing on another connection's lock (said once, until one succeeds) */
};

static const char *const schema[] = {
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS uploads("
    " id TEXT PRIMARY KEY, length INTEGER NOT NULL, offset INTEGER NOT NULL DEFAULT 0,"
    " kind INTEGER NOT NULL, metadata TEXT, parts TEXT, created INTEGER NOT NULL,"
    " expires INTEGER NOT NULL, completed INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS videos("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, title TEXT NOT NULL,"
    " state TEXT NOT NULL, error_code TEXT, error_message TEXT, source TEXT NOT NULL,"
    " source_size INTEGER NOT NULL, info TEXT, plan TEXT, result TEXT,"
    " created INTEGER NOT NULL, updated INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tasks("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " video_id TEXT NOT NULL REFERENCES videos(id) ON DELETE CASCADE,"
    " kind TEXT NOT NULL, arg INTEGER NOT NULL DEFAULT 0, class INTEGER NOT NULL,"
    " priority INTEGER NOT NULL, state TEXT NOT NULL, deps_left INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL,"
    " not_before INTEGER NOT NULL DEFAULT 0, lease_owner TEXT, lease_expires INTEGER,"
    " weight REAL NOT NULL, result TEXT, error_code TEXT, error_message TEXT,"
    " created INTEGER NOT NULL, updated INTEGER NOT NULL,"
    " interrupted INTEGER NOT NULL DEFAULT 0)", /* runs cut short by the process dying (not attempts) */
    "CREATE INDEX IF NOT EXISTS tasks_ready ON tasks(state, class, priority)",
    "CREATE INDEX IF NOT EXISTS videos_state ON videos(state)", /* /metrics counts by state */
    /* a final creation asked again finds the join its parts went into (tus.c, rejoin) */
    "CREATE INDEX IF NOT EXISTS uploads_final_parts ON uploads(parts) WHERE kind = 2",
    "CREATE INDEX IF NOT EXISTS tasks_video ON tasks(video_id, kind, arg)",
    "CREATE TABLE IF NOT EXISTS task_deps("
    " task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
    " dep_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
    " PRIMARY KEY(task_id, dep_id))",
    "CREATE INDEX IF NOT EXISTS task_deps_dep ON task_deps(dep_id)",
    "INSERT OR IGNORE INTO meta(key, value) VALUES('schema', '1')",
};

int pc_db_open(const char *path, pc_db **out)
{
    pc_db *db = calloc(1, sizeof(*db));
    if (db == NULL)
        return PC_ENOMEM;
    int r = pc_sqlite_open(&db->sq, path, schema, sizeof(schema) / sizeof(schema[0]));
    if (r != 0) {
        free(db);
        return r;
    }
    /* every commit durable (WAL's NORMAL may lose the last ones to a power cut): an upload acknowledged as
     * complete, a video said ready, must still be so after one */
    if ((r = pc_sqlite_exec(&db->sq, "PRAGMA synchronous=FULL")) != 0) {
        pc_db_close(db);
        return r;
    }
    /* a database from before tasks counted their interruptions */
    sqlite3_stmt *st = pc_sqlite_prep(&db->sq, "SELECT 1 FROM pragma_table_info('tasks') WHERE name = 'interrupted'", "");
    int rc = st != NULL ? sqlite3_step(st) : SQLITE_ERROR;
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        r = pc_sqlite_exec(&db->sq, "ALTER TABLE tasks ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0");
    else if (rc != SQLITE_ROW)
        r = PC_EDB;
    if (r != 0) {
        pc_sqlite_close(&db->sq);
        free(db);
        return r;
    }
    *out = db;
    return 0;
}

void pc_db_busy_wait(pc_db *db, int ms)
{
    pc_sqlite_busy_wait(&db->sq, ms);
}

int pc_db_took_busy(pc_db *db)
{
    return pc_sqlite_took_busy(&db->sq);
}

void pc_db_close(pc_db *db)
{
    if (db == NULL)
        return;
    pc_sqlite_close(&db->sq);
    free(db);
}

int pc_db_begin(pc_db *db)
{
    return pc_sqlite_begin(&db->sq);
}

int pc_db_commit(pc_db *db)
{
    return pc_sqlite_commit(&db->sq);
}

void pc_db_rollback(pc_db *db)
{
    pc_sqlite_rollback(&db->sq);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s != NULL ? strdup((const char *)s) : NULL;
}

static void col_copy(sqlite3_stmt *st, int i, char *out, size_t cap)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    snprintf(out, cap, "%s", s != NULL ? (const char *)s : "");
}

/* ---- uploads ---- */

void pc_upload_clear(pc_upload *u)
{
    free(u->metadata);
    free(u->parts);
    u->metadata = u->parts = NULL;
}

int pc_db_upload_insert(pc_db *db, const pc_upload *u)
{
    return pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq,
                        "INSERT INTO uploads(id, length, offset, kind, metadata, parts, created, expires, completed)"
                        " VALUES(?,?,?,?,?,?,?,?,?)",
                        "siiissiii", u->id, u->length, u->offset, (int64_t)u->kind, u->metadata, u->parts,
                        u->created, u->expires, (int64_t)u->completed));
}

static int upload_get_where(pc_db *db, const char *where, const char *arg, pc_upload *out)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT id, length, offset, kind, metadata, parts, created, expires, completed FROM uploads WHERE %s LIMIT 1",
             where);
    sqlite3_stmt *st = pc_sqlite_prep(&db->sq, sql, "s", arg);
    if (st == NULL)
        return PC_EDB;
    int rc = sqlite3_step(st), r = 0;
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        col_copy(st, 0, out->id, sizeof(out->id));
        out->length = sqlite3_column_int64(st, 1);
        out->offset = sqlite3_column_int64(st, 2);
        out->kind = sqlite3_column_int(st, 3);
        out->metadata = col_dup(st, 4);
        out->parts = col_dup(st, 5);
        out->created = sqlite3_column_int64(st, 6);
        out->expires = sqlite3_column_int64(st, 7);
        out->completed = sqlite3_column_int(st, 8);
    } else {
        r = rc == SQLITE_DONE ? PC_ENOENT : PC_EDB;
    }
    sqlite3_finalize(st);
    return r;
}

int pc_db_upload_get(pc_db *db, const char *id, pc_upload *out)
{
    return upload_get_where(db, "id = ?", id, out);
}

int pc_db_upload_final_of(pc_db *db, const char *parts, pc_upload *out)
{
    return upload_get_where(db, "kind = 2 AND parts = ?", parts, out);
}

int pc_db_upload_set_offset(pc_db *db, const char *id, int64_t offset, int completed)
{
    return pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq, "UPDATE uploads SET offset = ?, completed = ? WHERE id = ?", "iis", offset,
                        (int64_t)completed, id));
}

int pc_db_upload_delete(pc_db *db, const char *id)
{
    return pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq, "DELETE FROM uploads WHERE id = ?", "s", id));
}

int pc_db_upload_pending(pc_db *db, int64_t now_s, int64_t *bytes)
{
    sqlite3_stmt *st = pc_sqlite_prep(
        &db->sq, "SELECT COALESCE(SUM(length - offset), 0) FROM uploads WHERE completed = 0 AND expires > ?", "i",
        now_s);
    if (st == NULL)
        return PC_EDB;
    int rc = sqlite3_step(st);
    *bytes = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : PC_EDB;
}

int pc_db_upload_expired(pc_db *db, int64_t now_s, int64_t keep_done_s, char (*ids)[PC_ID_LEN + 1], int max)
{
    sqlite3_stmt *st = pc_sqlite_prep(&db->sq,
                            "SELECT id FROM uploads WHERE ((completed = 0 OR kind = 1) AND expires <= ?1)"
                            " OR (completed = 1 AND kind <> 1 AND expires <= ?1 - ?2) LIMIT ?3",
                            "iii", now_s, keep_done_s, (int64_t)max);
    if (st == NULL)
        return PC_EDB;
    int n = 0;
    while (n < max && sqlite3_step(st) == SQLITE_ROW)
        col_copy(st, 0, ids[n++], PC_ID_LEN + 1);
    sqlite3_finalize(st);
    return n;
}

/* ---- videos ---- */

void pc_video_clear(pc_video *v)
{
    free(v->title);
    free(v->error_code);
    free(v->error_message);
    free(v->source);
    free(v->info);
    free(v->plan);
    free(v->result);
    memset(v, 0, sizeof(*v));
}

#define VIDEO_COLS \
    "seq, id, title, state, error_code, error_message, source, source_size, info, plan, result, created, updated"

static void read_video(sqlite3_stmt *st, pc_video *v)
{
    memset(v, 0, sizeof(*v));
    v->seq = sqlite3_column_int64(st, 0);
    col_copy(st, 1, v->id, sizeof(v->id));
    v->title = col_dup(st, 2);
    col_copy(st, 3, v->state, sizeof(v->state));
    v->error_code = col_dup(st, 4);
    v->error_message = col_dup(st, 5);
    v->source = col_dup(st, 6);
    v->source_size = sqlite3_column_int64(st, 7);
    v->info = col_dup(st, 8);
    v->plan = col_dup(st, 9);
    v->result = col_dup(st, 10);
    v->created_ms = sqlite3_column_int64(st, 11);
    v->updated_ms = sqlite3_column_int64(st, 12);
}

/* A video's first tasks, probe → plan (plan adds the rest); in the caller's transaction. */
static int add_first_tasks(pc_db *db, const char *id, int64_t now_ms)
{
    int64_t probe = 0, plan = 0;
    const pc_task_spec probe_spec = {"probe", 0, PC_TASK_HEAVY, 50, 2.0};
    const pc_task_spec plan_spec = {"plan", 0, PC_TASK_LIGHT, 50, 0.5};
    int r = pc_taskq_add(db, id, &probe_spec, NULL, 0, now_ms, &probe);
    if (r == 0)
        r = pc_taskq_add(db, id, &plan_spec, &probe, 1, now_ms, &plan);
    return r;
}

/* Commits when |r| is 0, else rolls back; returns |r| or the commit's failure. */
static int finish(pc_db *db, int r)
{
    if (r == 0)
        r = pc_db_commit(db);
    if (r != 0)
        pc_db_rollback(db);
    return r;
}

int pc_db_video_create(pc_db *db, const char *id, const char *title, const char *source, int64_t source_size,
                       int64_t now_ms)
{
    int r = pc_db_begin(db);
    if (r != 0)
        return r;
    r = pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq,
                     "INSERT INTO videos(id, title, state, source, source_size, created, updated)"
                     " VALUES(?,?,'queued',?,?,?,?)",
                     "sssiii", id, title, source, source_size, now_ms, now_ms));
    if (r == 0)
        r = add_first_tasks(db, id, now_ms);
    return finish(db, r);
}

int pc_db_video_retry(pc_db *db, const char *id, int64_t now_ms)
{
    int r = pc_db_begin(db);
    if (r != 0)
        return r;
    r = pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq,
                     "UPDATE videos SET state = 'queued', error_code = NULL, error_message = NULL, info = NULL,"
                     " plan = NULL, result = NULL, updated = ? WHERE id = ? AND state = 'failed'",
                     "is", now_ms, id));
    if (r == 0 && sqlite3_changes(db->sq.h) == 0)
        r = PC_ECONFLICT;
    if (r == 0)
        r = pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq, "DELETE FROM tasks WHERE video_id = ?", "s", id));
    if (r == 0)
        r = add_first_tasks(db, id, now_ms);
    return finish(db, r);
}

size_t pc_title_banned_at(const char *s, size_t left)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x20 || u[0] == 0x7f)
        return 1;
    if (left >= 2 && u[0] == 0xc2 && u[1] >= 0x80 && u[1] <= 0x9f) /* U+0080-U+009F */
        return 2;
    if (left >= 3 && u[0] == 0xe2 && u[1] == 0x80 && u[2] >= 0xa8 && u[2] <= 0xae) /* U+2028-U+202E */
        return 3;
    if (left >= 3 && u[0] == 0xe2 && u[1] == 0x81 && u[2] >= 0xa6 && u[2] <= 0xa9) /* U+2066-U+2069 */
        return 3;
    return 0;
}

int pc_db_video_set_title(pc_db *db, const char *id, const char *title, int64_t now_ms)
{
    int r = pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq, "UPDATE videos SET title = ?, updated = ? WHERE id = ?",
                                                  "sis", title, now_ms, id));
    return r == 0 && sqlite3_changes(db->sq.h) == 0 ? PC_ENOENT : r;
}

int pc_db_video_get(pc_db *db, const char *id, pc_video *out)
{
    sqlite3_stmt *st = pc_sqlite_prep(&db->sq, "SELECT " VIDEO_COLS " FROM videos WHERE id = ?", "s", id);
    if (st == NULL)
        return PC_EDB;
    int rc = sqlite3_step(st), r = 0;
    if (rc == SQLITE_ROW)
        read_video(st, out);
    else
        r = rc == SQLITE_DONE ? PC_ENOENT : PC_EDB;
    sqlite3_finalize(st);
    return r;
}

int pc_db_video_list(pc_db *db, int64_t after_seq, pc_video *out, int max)
{
    sqlite3_stmt *st = pc_sqlite_prep(&db->sq, "SELECT " VIDEO_COLS " FROM videos WHERE (? = 0 OR seq < ?) ORDER BY seq DESC LIMIT ?",
                            "iii", after_seq, after_seq, (int64_t)max);
    if (st == NULL)
        return PC_EDB;
    int n = 0;
    while (n < max && sqlite3_step(st) == SQLITE_ROW)
        read_video(st, &out[n++]);
    sqlite3_finalize(st);
    return n;
}

int pc_db_video_count(pc_db *db, int64_t *count)
{
    sqlite3_stmt *st = pc_sqlite_prep(&db->sq, "SELECT COUNT(*) FROM videos", "");
    if (st == NULL)
        return PC_EDB;
    int r = sqlite3_step(st) == SQLITE_ROW ? 0 : PC_EDB;
    *count = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return r;
}

int pc_db_state_counts(pc_db *db, int tasks, void (*fn)(void *arg, const char *state, int64_t n), void *arg)
{
    /* both read an index on state alone, not the rows */
    sqlite3_stmt *st = pc_sqlite_prep(&db->sq,
                                      tasks ? "SELECT state, COUNT(*) FROM tasks WHERE state IN ('blocked', 'ready', 'running')"
                                              " GROUP BY state"
                                            : "SELECT state, COUNT(*) FROM videos GROUP BY state",
                                      "");
    if (st == NULL)
        return PC_EDB;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (sqlite3_column_text(st, 0) != NULL)
            fn(arg, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : PC_EDB;
}

int pc_db_video_set_state(pc_db *db, const char *id, const char *state, int64_t now_ms)
{
    return pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq, "UPDATE videos SET state = ?, updated = ? WHERE id = ?", "sis", state, now_ms, id));
}

int pc_db_video_set_field(pc_db *db, const char *id, const char *field, const char *json, int64_t now_ms)
{
    const char *sql;
    if (strcmp(field, "info") == 0)
        sql = "UPDATE videos SET info = ?, updated = ? WHERE id = ?";
    else if (strcmp(field, "plan") == 0)
        sql = "UPDATE videos SET plan = ?, updated = ? WHERE id = ?";
    else if (strcmp(field, "result") == 0)
        sql = "UPDATE videos SET result = ?, updated = ? WHERE id = ?";
    else
        return PC_EINVAL;
    return pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq, sql, "sis", json, now_ms, id));
}

int pc_db_video_note(pc_db *db, const char *id, const char *code, const char *message, int64_t now_ms)
{
    return pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq, "UPDATE videos SET error_code = ?, error_message = ?, updated = ? WHERE id = ?",
                                                 "ssis", code, message, now_ms, id));
}

int pc_db_video_fail(pc_db *db, const char *id, const char *code, const char *message, int64_t now_ms)
{
    int r = pc_db_begin(db);
    if (r != 0)
        return r;
    r = pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq,
                     "UPDATE videos SET state = 'failed', error_code = ?, error_message = ?, updated = ? WHERE id = ?",
                     "ssis", code, message, now_ms, id));
    if (r == 0)
        r = pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq,
                         "UPDATE tasks SET state = 'canceled', lease_owner = NULL, updated = ?"
                         " WHERE video_id = ? AND state IN ('blocked', 'ready', 'running')",
                         "is", now_ms, id));
    return finish(db, r);
}

int pc_db_video_delete(pc_db *db, const char *id)
{
    int r = pc_db_begin(db);
    if (r != 0)
        return r;
    r = pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq, "DELETE FROM videos WHERE id = ?", "s", id));
    if (r == 0 && sqlite3_changes(db->sq.h) == 0)
        r = PC_ENOENT;
    /* the upload it came from (the final upload has the video's id): its tus URL, its metadata with the
     * file name, go with it */
    if (r == 0)
        r = pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq, "DELETE FROM uploads WHERE id = ?", "s", id));
    if (r == 0)
        r = pc_db_commit(db);
    if (r != 0)
        pc_db_rollback(db);
    return r;
}

/* ---- tasks ---- */

int pc_taskq_add(pc_db *db, const char *video_id, const pc_task_spec *spec, const int64_t *deps, size_t ndeps,
                 int64_t now_ms, int64_t *id_out)
{
    int r = pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq,
                         "INSERT INTO tasks(video_id, kind, arg, class, priority, state, deps_left, max_attempts,"
                         " weight, created, updated) VALUES(?,?,?,?,?,?,?,5,?,?,?)",
                         "ssiiisidii", video_id, spec->kind, (int64_t)spec->arg, (int64_t)spec->cls,
                         (int64_t)spec->priority, ndeps > 0 ? "blocked" : "ready", (int64_t)ndeps, spec->weight,
                         now_ms, now_ms));
    if (r != 0)
        return r;
    int64_t id = sqlite3_last_insert_rowid(db->sq.h);
    for (size_t i = 0; r == 0 && i < ndeps; i++)
        r = pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq, "INSERT INTO task_deps(task_id, dep_id) VALUES(?,?)", "ii", id, deps[i]));
    if (r == 0 && ndeps > 0) {
        /* dependencies that are already done count as satisfied */
        r = pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq,
                         "UPDATE tasks SET deps_left = (SELECT COUNT(*) FROM task_deps d JOIN tasks t ON t.id = d.dep_id"
                         " WHERE d.task_id = ?1 AND t.state <> 'done') WHERE id = ?1",
                         "i", id));
        if (r == 0)
            r = pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq, "UPDATE tasks SET state = 'ready' WHERE id = ? AND deps_left = 0", "i", id));
    }
    if (r == 0 && id_out != NULL)
        *id_out = id;
    return r;
}

int pc_taskq_claim(pc_db *db, int cls, const char *owner, int64_t now_ms, int64_t lease_ms, pc_task *out)
{
    return pc_taskq_claim_interrupted(db, cls, owner, now_ms, lease_ms, 0, out);
}

/* (0 when the database cannot say: the tasks are then dispatched as usual) */
int pc_taskq_count_interrupted(pc_db *db, int min)
{
    sqlite3_stmt *st = pc_sqlite_prep(&db->sq, "SELECT COUNT(*) FROM tasks WHERE state = 'ready' AND interrupted >= ?", "i",
                                      (int64_t)min);
    int n = st != NULL && sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return n;
}

int pc_taskq_clear_interrupted(pc_db *db, int64_t id)
{
    return pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq, "UPDATE tasks SET interrupted = 0 WHERE id = ?", "i", id));
}

int pc_taskq_claim_interrupted(pc_db *db, int cls, const char *owner, int64_t now_ms, int64_t lease_ms, int min_interrupted,
                               pc_task *out)
{
    sqlite3_stmt *st = pc_sqlite_prep(&db->sq,
                            "UPDATE tasks SET state = 'running', lease_owner = ?1, lease_expires = ?2 + ?3,"
                            " attempts = attempts + 1, updated = ?2"
                            " WHERE id = (SELECT t.id FROM tasks t JOIN videos v ON v.id = t.video_id"
                            "   WHERE t.state = 'ready' AND t.class = ?4 AND t.not_before <= ?2 AND t.interrupted >= ?5"
                            "   ORDER BY t.priority DESC, v.seq ASC, t.id ASC LIMIT 1)"
                            " RETURNING id, video_id, kind, arg, attempts, max_attempts, weight, interrupted",
                            "siiii", owner, now_ms, lease_ms, (int64_t)cls, (int64_t)min_interrupted);
    if (st == NULL)
        return PC_EDB;
    int rc = sqlite3_step(st), r = 0;
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        out->id = sqlite3_column_int64(st, 0);
        col_copy(st, 1, out->video_id, sizeof(out->video_id));
        col_copy(st, 2, out->kind, sizeof(out->kind));
        out->arg = sqlite3_column_int(st, 3);
        out->attempts = sqlite3_column_int(st, 4);
        out->max_attempts = sqlite3_column_int(st, 5);
        out->weight = sqlite3_column_double(st, 6);
        out->interrupted = sqlite3_column_int(st, 7);
        /* the update is committed only when the statement finishes: a full disk fails it here, and then the
         * task is not ours (handing it out anyway ran it without a lease, attempts never counted) */
        if (sqlite3_step(st) != SQLITE_DONE)
            r = PC_EDB;
    } else {
        r = rc == SQLITE_DONE ? PC_ENOENT : PC_EDB;
    }
    if (sqlite3_finalize(st) != SQLITE_OK && r == 0)
        r = PC_EDB;
    if (r == PC_EDB && pc_sqlite_took_busy(&db->sq)) {
        /* an operator's sqlite3 or a backup holds the lock: tried again at every tick, said once */
        if (!db->claim_blocked)
            PC_LOGW("db", "the database is locked by another program: no task starts until it lets go");
        db->claim_blocked = 1;
    } else if (r == PC_EDB) {
        PC_LOGE("db", "cannot claim a task: %s", sqlite3_errmsg(db->sq.h));
    } else if (db->claim_blocked) {
        PC_LOGI("db", "the database is free again: tasks start");
        db->claim_blocked = 0;
    }
    return r;
}

int pc_taskq_complete(pc_db *db, int64_t id, const char *result, int64_t now_ms)
{
    int r = pc_db_begin(db);
    if (r != 0)
        return r;
    r = pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq,
                     "UPDATE tasks SET state = 'done', result = ?, lease_owner = NULL, error_code = NULL,"
                     " error_message = NULL, updated = ? WHERE id = ? AND state = 'running'",
                     "sii", result, now_ms, id));
    int changed = sqlite3_changes(db->sq.h);
    if (r == 0 && changed != 1)
        r = PC_ECONFLICT; /* not running (any more): reclaimed, released, canceled, or done already */
    if (r == 0 && changed == 1)
        r = pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq,
                         "UPDATE tasks SET deps_left = deps_left - 1, updated = ?"
                         " WHERE id IN (SELECT task_id FROM task_deps WHERE dep_id = ?)",
                         "ii", now_ms, id));
    if (r == 0 && changed == 1)
        r = pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq,
                         "UPDATE tasks SET state = 'ready' WHERE state = 'blocked' AND deps_left <= 0"
                         " AND id IN (SELECT task_id FROM task_deps WHERE dep_id = ?)",
                         "i", id));
    if (r == 0)
        r = pc_db_commit(db);
    if (r != 0)
        pc_db_rollback(db);
    return r;
}

int pc_taskq_retry(pc_db *db, int64_t id, int64_t not_before_ms, const char *code, const char *message, int64_t now_ms)
{
    return pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq,
                        "UPDATE tasks SET state = 'ready', lease_owner = NULL, not_before = ?, error_code = ?,"
                        " error_message = ?, updated = ? WHERE id = ? AND state = 'running'",
                        "issii", not_before_ms, code, message, now_ms, id));
}

int pc_taskq_release(pc_db *db, int64_t id, int64_t now_ms)
{
    return pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq,
                        "UPDATE tasks SET state = 'ready', lease_owner = NULL, attempts = MAX(attempts - 1, 0),"
                        " updated = ? WHERE id = ? AND state = 'running'",
                        "ii", now_ms, id));
}

int pc_taskq_renew(pc_db *db, int64_t id, const char *owner, int64_t now_ms, int64_t lease_ms)
{
    return pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq,
                        "UPDATE tasks SET lease_expires = ? WHERE id = ? AND state = 'running' AND lease_owner = ?",
                        "iis", now_ms + lease_ms, id, owner));
}

int pc_taskq_reclaim(pc_db *db, int64_t now_ms, int all, const int64_t *keep, size_t nkeep)
{
    pc_buf ids;
    pc_buf_init(&ids, 64 + 24 * nkeep);
    int r = pc_buf_append_str(&ids, "[");
    for (size_t i = 0; r == 0 && i < nkeep; i++)
        r = pc_buf_printf(&ids, "%s%" PRId64, i > 0 ? "," : "", keep[i]);
    r = r ? r : pc_buf_append_str(&ids, "]");
    if (r != 0) {
        pc_buf_clear(&ids);
        return r;
    }
    r = pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq,
                         /* at a start (|all|), a run the process's death cut short is not a failed attempt (a
                          * later failure would count it, and fail the video early); it is counted apart, so
                          * that a task that kills the process is not run for ever (pipeline.c); a lease that
                          * expired in a live process counts as an attempt, as before */
                         "UPDATE tasks SET state = 'ready', lease_owner = NULL,"
                         " attempts = CASE WHEN ?2 THEN MAX(attempts - 1, 0) ELSE attempts END,"
                         " interrupted = interrupted + (CASE WHEN ?2 THEN 1 ELSE 0 END), updated = ?1"
                         " WHERE state = 'running' AND (?2 OR lease_expires < ?1)"
                         " AND id NOT IN (SELECT value FROM json_each(?3))",
                         "iis", now_ms, (int64_t)all, ids.data));
    pc_buf_clear(&ids);
    return r != 0 ? r : sqlite3_changes(db->sq.h);
}

char *pc_taskq_result(pc_db *db, const char *video_id, const char *kind, int arg)
{
    sqlite3_stmt *st = pc_sqlite_prep(&db->sq, "SELECT result FROM tasks WHERE video_id = ? AND kind = ? AND arg = ? AND state = 'done'",
                            "ssi", video_id, kind, (int64_t)arg);
    char *s = NULL;
    if (st != NULL && sqlite3_step(st) == SQLITE_ROW)
        s = col_dup(st, 0);
    sqlite3_finalize(st);
    return s;
}

char *pc_taskq_dep_results(pc_db *db, int64_t id)
{
    sqlite3_stmt *st = pc_sqlite_prep(&db->sq,
                            "SELECT t.kind, t.arg, t.result FROM task_deps d JOIN tasks t ON t.id = d.dep_id"
                            " WHERE d.task_id = ? AND t.state = 'done' ORDER BY t.kind, t.arg",
                            "i", id);
    if (st == NULL)
        return NULL;
    json_t *o = json_object();
    while (sqlite3_step(st) == SQLITE_ROW) {
        char key[48];
        snprintf(key, sizeof(key), "%s:%d", (const char *)sqlite3_column_text(st, 0), sqlite3_column_int(st, 1));
        const char *res = (const char *)sqlite3_column_text(st, 2);
        json_t *v = res != NULL ? json_loads(res, 0, NULL) : NULL;
        json_object_set_new(o, key, v != NULL ? v : json_null());
    }
    sqlite3_finalize(st);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

int pc_taskq_weights(pc_db *db, const char *video_id, int first, double *done, double *total)
{
    sqlite3_stmt *st = pc_sqlite_prep(&db->sq,
                            "SELECT COALESCE(SUM(CASE WHEN state = 'done' THEN weight END), 0), COALESCE(SUM(weight), 0)"
                            " FROM tasks WHERE video_id = ? AND (kind IN ('probe', 'plan')) = (? != 0)",
                            "si", video_id, (int64_t)first);
    if (st == NULL)
        return PC_EDB;
    int r = sqlite3_step(st) == SQLITE_ROW ? 0 : PC_EDB;
    *done = sqlite3_column_double(st, 0);
    *total = sqlite3_column_double(st, 1);
    sqlite3_finalize(st);
    return r;
}

/* The one number |st| (a prepared COUNT, or NULL) gives; the statement is finalized. */
static int count_of(sqlite3_stmt *st, int64_t *n)
{
    if (st == NULL)
        return PC_EDB;
    int r = sqlite3_step(st) == SQLITE_ROW ? 0 : PC_EDB;
    *n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return r;
}

int pc_taskq_count(pc_db *db, const char *video_id, const char *state, int64_t *n)
{
    return count_of(pc_sqlite_prep(&db->sq, "SELECT COUNT(*) FROM tasks WHERE video_id = ? AND state = ?", "ss", video_id, state), n);
}

int pc_taskq_unfinished(pc_db *db, const char *video_id, int64_t *n)
{
    return count_of(pc_sqlite_prep(&db->sq, "SELECT COUNT(*) FROM tasks WHERE video_id = ? AND state <> 'done'", "s", video_id), n);
}

int pc_taskq_last_package(pc_db *db, const char *video_id, int64_t *package_id, int *arg, int64_t *thumbs_id)
{
    sqlite3_stmt *st = pc_sqlite_prep(&db->sq,
                            "SELECT p.id, p.arg, t.id FROM tasks p JOIN tasks t ON t.video_id = p.video_id AND t.kind = 'thumbs'"
                            " WHERE p.video_id = ? AND p.kind = 'package' AND p.state = 'done' ORDER BY p.arg DESC LIMIT 1",
                            "s", video_id);
    if (st == NULL)
        return PC_EDB;
    int s = sqlite3_step(st), r = s == SQLITE_ROW ? 0 : s == SQLITE_DONE ? PC_ENOENT : PC_EDB;
    if (r == 0) {
        *package_id = sqlite3_column_int64(st, 0);
        *arg = sqlite3_column_int(st, 1);
        *thumbs_id = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    return r;
}

int pc_taskq_deps_of(pc_db *db, int64_t id, const char *except, int64_t *ids, size_t max, size_t *n)
{
    sqlite3_stmt *st = pc_sqlite_prep(&db->sq,
                            "SELECT d.dep_id FROM task_deps d JOIN tasks t ON t.id = d.dep_id WHERE d.task_id = ? AND t.kind <> ?"
                            " ORDER BY d.dep_id",
                            "is", id, except != NULL ? except : "");
    if (st == NULL)
        return PC_EDB;
    int r = 0, s;
    *n = 0;
    while (r == 0 && (s = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == max)
            r = PC_ETOOBIG;
        else
            ids[(*n)++] = sqlite3_column_int64(st, 0);
    }
    if (r == 0 && s != SQLITE_DONE)
        r = PC_EDB;
    sqlite3_finalize(st);
    return r;
}

int pc_taskq_drop_revision(pc_db *db, const char *video_id, int arg)
{
    if (arg <= 0) /* revision 0 is the video's own pipeline */
        return PC_EINVAL;
    return pc_sqlite_run(&db->sq, pc_sqlite_prep(&db->sq,
                         "DELETE FROM tasks WHERE video_id = ? AND arg = ? AND kind IN ('subtitles', 'package', 'sign', 'publish')",
                         "si", video_id, (int64_t)arg));
}
