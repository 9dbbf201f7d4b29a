/* SQLite glue; see pc_sqlite.h. */
#include "pc_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pc_log.h"

/* A statement's failure: an error, or only a debug line when it gave up on another program's lock (the
 * caller says that once, and tries again) */
#define DB_FAILED(s, ...)                                                                                         \
    do {                                                                                                          \
        if ((s)->gave_up)                                                                                         \
            PC_LOGD("db", __VA_ARGS__);                                                                           \
        else                                                                                                      \
            PC_LOGE("db", __VA_ARGS__);                                                                           \
    } while (0)

int pc_sqlite_exec(pc_sqlite *s, const char *sql)
{
    char *err = NULL;
    s->gave_up = 0; /* what pc_sqlite_took_busy says is about the latest statement */
    if (sqlite3_exec(s->h, sql, NULL, NULL, &err) != SQLITE_OK) {
        DB_FAILED(s, "%s: %s", sql, err != NULL ? err : "?");
        pc_err_detail_set("%s", err != NULL ? err : sqlite3_errmsg(s->h));
        sqlite3_free(err);
        return PC_EDB;
    }
    return 0;
}

/* SQLite's own busy wait (sleeps of 1, 2, 5 … 100 ms up to the limit), remembering when it gives up. */
static int busy_handler(void *arg, int count)
{
    static const int delays[] = {1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100};
    enum { NDELAYS = sizeof(delays) / sizeof(delays[0]) };
    pc_sqlite *s = arg;
    int waited = 0, delay;
    if (count < NDELAYS) {
        delay = delays[count];
        for (int i = 0; i < count; i++)
            waited += delays[i];
    } else {
        delay = delays[NDELAYS - 1];
        waited = 328 + delay * (count - NDELAYS); /* 328: the table's sum */
    }
    if (waited + delay > s->busy_ms) {
        delay = s->busy_ms - waited;
        if (delay <= 0) {
            s->gave_up = 1;
            return 0;
        }
    }
    sqlite3_sleep(delay);
    return 1;
}

int pc_sqlite_open(pc_sqlite *s, const char *path, const char *const *schema, size_t n)
{
    s->h = NULL;
    s->depth = 0;
    pc_err_detail_set("%s", "");
    if (path[0] != '\0' && strcmp(path, ":memory:") != 0) {
        /* a new database is private to its owner (the tracker's holds its signing key); SQLite gives the
         * -wal and -shm files the same mode */
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            pc_err_detail_set("%s", strerror(errno));
            return PC_EDB;
        }
        close(fd);
    }
    if (sqlite3_open_v2(path, &s->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        pc_err_detail_set("%s", s->h != NULL ? sqlite3_errmsg(s->h) : "out of memory");
        pc_sqlite_close(s);
        return PC_EDB;
    }
    s->busy_ms = PC_SQLITE_BUSY_MS;
    s->gave_up = 0;
    sqlite3_busy_handler(s->h, busy_handler, s);
    /* the first statement reads the file: one that is not a database fails here, said by the caller */
    char *err = NULL;
    if (sqlite3_exec(s->h, "PRAGMA journal_mode=WAL", NULL, NULL, &err) != SQLITE_OK) {
        pc_err_detail_set("%s", err != NULL ? err : sqlite3_errmsg(s->h));
        sqlite3_free(err);
        pc_sqlite_close(s);
        return PC_EDB;
    }
    int r = pc_sqlite_exec(s, "PRAGMA synchronous=NORMAL");
    if (r == 0)
        r = pc_sqlite_exec(s, "PRAGMA foreign_keys=ON");
    for (size_t i = 0; r == 0 && i < n; i++)
        r = pc_sqlite_exec(s, schema[i]);
    if (r != 0)
        pc_sqlite_close(s);
    return r;
}

void pc_sqlite_busy_wait(pc_sqlite *s, int ms)
{
    s->busy_ms = ms;
}

int pc_sqlite_took_busy(pc_sqlite *s)
{
    int r = s->gave_up;
    s->gave_up = 0;
    return r;
}

void pc_sqlite_close(pc_sqlite *s)
{
    sqlite3_close(s->h);
    s->h = NULL;
}

int pc_sqlite_begin(pc_sqlite *s)
{
    char sql[48];
    if (s->depth == 0)
        snprintf(sql, sizeof(sql), "BEGIN IMMEDIATE");
    else
        snprintf(sql, sizeof(sql), "SAVEPOINT sp%d", s->depth);
    int r = pc_sqlite_exec(s, sql);
    if (r == 0)
        s->depth++;
    return r;
}

int pc_sqlite_commit(pc_sqlite *s)
{
    char sql[48];
    s->depth--;
    if (s->depth == 0)
        snprintf(sql, sizeof(sql), "COMMIT");
    else
        snprintf(sql, sizeof(sql), "RELEASE sp%d", s->depth);
    int r = pc_sqlite_exec(s, sql);
    if (r != 0)
        s->depth++; /* still open: the caller rolls back */
    return r;
}

void pc_sqlite_rollback(pc_sqlite *s)
{
    char sql[64];
    if (s->depth <= 0)
        return; /* nothing open (a failed begin): keep the nesting count sane */
    s->depth--;
    if (s->depth == 0)
        snprintf(sql, sizeof(sql), "ROLLBACK");
    else
        snprintf(sql, sizeof(sql), "ROLLBACK TO sp%d; RELEASE sp%d", s->depth, s->depth);
    sqlite3_exec(s->h, sql, NULL, NULL, NULL);
}

sqlite3_stmt *pc_sqlite_prep(pc_sqlite *s, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st = NULL;
    s->gave_up = 0;
    if (sqlite3_prepare_v2(s->h, sql, -1, &st, NULL) != SQLITE_OK) {
        DB_FAILED(s, "prepare failed: %s: %s", sqlite3_errmsg(s->h), sql);
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    for (int i = 0; fmt[i] != '\0'; i++) {
        int rc;
        if (fmt[i] == 's') {
            const char *v = va_arg(ap, const char *);
            rc = v != NULL ? sqlite3_bind_text(st, i + 1, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i + 1);
        } else if (fmt[i] == 'i') {
            rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
        } else if (fmt[i] == 'b') {
            const void *p = va_arg(ap, const void *);
            size_t len = va_arg(ap, size_t);
            rc = sqlite3_bind_blob64(st, i + 1, p, len, SQLITE_TRANSIENT);
        } else {
            rc = sqlite3_bind_double(st, i + 1, va_arg(ap, double));
        }
        if (rc != SQLITE_OK) {
            va_end(ap);
            sqlite3_finalize(st);
            return NULL;
        }
    }
    va_end(ap);
    return st;
}

int pc_sqlite_run(pc_sqlite *s, sqlite3_stmt *st)
{
    if (st == NULL)
        return PC_EDB;
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        DB_FAILED(s, "step failed: %s", sqlite3_errmsg(s->h));
        return PC_EDB;
    }
    return 0;
}
