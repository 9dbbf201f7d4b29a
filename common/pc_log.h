/*
 * Process logging for the I/O shells (servers, clients, tools). Lines go to
 * stderr as "2026-11-21T10:00:00.123Z LEVEL module: message". The level is a
 * process-wide setting, like curl's verbosity; pure modules (engine, player,
 * peer selection) never log through this.
 */
#ifndef PC_LOG_H
#define PC_LOG_H

#include <stddef.h>

enum pc_log_level { PC_LOG_ERROR = 0, PC_LOG_WARN = 1, PC_LOG_INFO = 2, PC_LOG_DEBUG = 3 };

/* Sets the most verbose level that is printed. Cannot fail. */
void pc_log_set_level(int level);
int pc_log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns the level or -1. */
int pc_log_level_parse(const char *s);
/* Writes one line (thread-safe); a trailing newline in |fmt| is not needed. */
void pc_log(int level, const char *module, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A status line redrawn in place on a terminal ("\r" + text, no newline) was just drawn (1), or is left as
 * it is (0: the owner ends it with a newline if one was shown; returns whether one was). While one is
 * shown, each line written to stderr first erases it ("\r" and erase-line): log lines were appended to
 * it. The owner redraws it at its next tick. */
int pc_log_status_shown(int shown);
/* Erases a shown status line; for other writers of whole lines to stderr or stdout (the same terminal). */
void pc_log_clear_status(void);
/* Copies at most |dstlen| - 1 bytes of text from elsewhere (a server's error body) for a log line, each
 * byte outside printable ASCII as '?', so it cannot drive a terminal; |dst| is NUL-terminated. */
void pc_log_printable(char *dst, size_t dstlen, const void *src, size_t len);
/* The same for a string that may be NULL (shown as "?"); returns |dst|, for use in an argument list. */
const char *pc_log_printable_str(char *dst, size_t dstlen, const char *s);

#define PC_LOGE(mod, ...) pc_log(PC_LOG_ERROR, mod, __VA_ARGS__)
#define PC_LOGW(mod, ...) pc_log(PC_LOG_WARN, mod, __VA_ARGS__)
#define PC_LOGI(mod, ...) pc_log(PC_LOG_INFO, mod, __VA_ARGS__)
#define PC_LOGD(mod, ...) pc_log(PC_LOG_DEBUG, mod, __VA_ARGS__)

#endif
