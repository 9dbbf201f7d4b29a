/*
 * SQLite glue shared by the origin's metadata store and the tracker's
 * statistics store: open in WAL mode with a schema, nested transactions
 * (the outermost is BEGIN IMMEDIATE, inner ones savepoints), and prepared
 * statements bound from a format string. Errors are logged with the SQL and
 * returned as PC_EDB.
 */
#ifndef PC_SQLITE_H
#define PC_SQLITE_H

#include <sqlite3.h>
#include <stddef.h>

#include "pc_error.h"

#define PC_SQLITE_BUSY_MS 5000

typedef struct pc_sqlite {
    sqlite3 *h;
    int depth;   /* transaction nesting */
    int busy_ms; /* how long a statement waits for another connection's lock */
    int gave_up; /* a statement failed because another connection held the lock (pc_sqlite_took_busy) */
} pc_sqlite;

/* Opens (creating) |path| with journal_mode=WAL, synchronous=NORMAL, foreign keys on, then runs
 * the |n| statements of |schema|. PC_EDB. */
int pc_sqlite_open(pc_sqlite *s, const char *path, const char *const *schema, size_t n) PC_MUST_CHECK;
/* Closes; safe on a pc_sqlite that failed to open. */
void pc_sqlite_close(pc_sqlite *s);
/* How long a statement waits for another connection's lock before it fails (PC_SQLITE_BUSY_MS after open). */
void pc_sqlite_busy_wait(pc_sqlite *s, int ms);
/* Whether the latest statement (since pc_sqlite_exec or pc_sqlite_prep) gave up waiting for another
 * connection's lock; clears it. Such a failure is "retry shortly", not a broken database. */
int pc_sqlite_took_busy(pc_sqlite *s);
int pc_sqlite_exec(pc_sqlite *s, const char *sql) PC_MUST_CHECK;
int pc_sqlite_begin(pc_sqlite *s) PC_MUST_CHECK;
/* On failure the transaction stays open and the caller rolls back. */
int pc_sqlite_commit(pc_sqlite *s) PC_MUST_CHECK;
/* A no-op when nothing is open. Cannot fail. */
void pc_sqlite_rollback(pc_sqlite *s);
/*
 * Prepares |sql| and binds arguments described by |fmt|: 's' text (NULL binds NULL), 'i' int64,
 * 'd' double, 'b' blob (pointer, then size_t length). Returns the statement or NULL.
 */
sqlite3_stmt *pc_sqlite_prep(pc_sqlite *s, const char *sql, const char *fmt, ...);
/* Steps a statement that returns no rows (or ignores them) and finalizes it; NULL gives PC_EDB. */
int pc_sqlite_run(pc_sqlite *s, sqlite3_stmt *st) PC_MUST_CHECK;

#endif
