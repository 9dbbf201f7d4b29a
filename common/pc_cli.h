/*
 * What every command-line entry point shares: one-line usage errors (exit 2, "PROG: message (see
 * --help)"), bounded numeric options, --log-level, and process start-up (SIGPIPE ignored so a peer
 * that goes away mid-response costs an EPIPE, not the process; libsodium and libcurl initialised).
 */
#ifndef PC_CLI_H
#define PC_CLI_H

#include <stdarg.h>

/* Sets the program name used in messages; call first. Cannot fail. */
void pc_cli_init(const char *prog);
/* Ignores SIGPIPE and initialises libsodium and libcurl; on failure prints one line and returns 1
 * (a main's exit status), else 0. */
int pc_cli_start_libraries(void);
/* Prints "PROG: MSG" and a newline on stderr as one line: control characters that came from the
 * command line or from a file (a newline in a path, an escape sequence in a JSON key) are written as
 * \n, \t or \xNN; at most PC_CLI_MSG_MAX bytes of MSG. */
#define PC_CLI_MSG_MAX 1024
__attribute__((format(printf, 1, 2))) void pc_cli_error(const char *fmt, ...);
__attribute__((format(printf, 1, 0))) void pc_cli_verror(const char *fmt, va_list ap);
/* Prints "PROG: MSG (see --help)", one line as above, and exits 2. */
__attribute__((noreturn, format(printf, 1, 2))) void pc_cli_usage(const char *fmt, ...);
/* After getopt_long returned '?' (with opterr 0): the usage error naming the word it refused. The
 * long options' values must be PC_CLI_LONG_FIRST or more, so that optopt tells a short option (the
 * programs have none: '-xy' is refused at its 'x', optind still on it) from a long one (optind past
 * it). */
#define PC_CLI_LONG_FIRST 256
__attribute__((noreturn)) void pc_cli_bad_option(char **argv);
/* A number in [min, max], or a usage error naming |what|. */
double pc_cli_num(const char *s, const char *what, double min, double max);
/* The same for a whole number, in decimal digits only (a '-' first): 1.5, 1e1 and 10.0 are
 * refused, not converted. */
double pc_cli_int(const char *s, const char *what, double min, double max);
/* Whether |u| is http:// or https:// followed by a host: a base URL that paths are appended to, so no
 * query, fragment, blank or control character. */
int pc_cli_is_http_url(const char *u);
/* For a process whose stop is under way and whose libuv signal handles are closed (closing them restores
 * the default action): SIGINT, SIGTERM and SIGHUP are ignored from now on, so that one arriving before the
 * exit is not a death by signal. */
void pc_cli_ignore_stop_signals(void);
/* Whether the process was started with SIGHUP ignored (nohup): then it keeps ignoring it, rather than
 * stopping on it as on SIGTERM. */
int pc_cli_sighup_ignored(void);
/* --log-level VALUE, or a usage error. */
void pc_cli_log_level(const char *s);

#endif
