/* Command-line glue; see pc_cli.h. */
#include "pc_cli.h"

#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "pc_crypto.h"
#include "pc_log.h"

static const char *prog_name = "peercdn";

void pc_cli_init(const char *prog)
{
    prog_name = prog;
}

int pc_cli_start_libraries(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (pc_crypto_init() != 0) {
        fprintf(stderr, "%s: libsodium failed to initialise\n", prog_name);
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "%s: libcurl failed to initialise\n", prog_name);
        return 1;
    }
    return 0;
}

static void print_line(const char *fmt, va_list ap, const char *tail)
{
    char msg[PC_CLI_MSG_MAX + 1], out[4 * PC_CLI_MSG_MAX + 1];
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0)
        snprintf(msg, sizeof(msg), "%s", fmt);
    size_t o = 0;
    for (const unsigned char *c = (const unsigned char *)msg; *c != '\0'; c++) {
        if (*c == '\n' || *c == '\t')
            o += (size_t)sprintf(out + o, "\\%c", *c == '\n' ? 'n' : 't');
        else if (*c < 0x20 || *c == 0x7f)
            o += (size_t)sprintf(out + o, "\\x%02x", *c);
        else
            out[o++] = (char)*c;
    }
    out[o] = '\0';
    flockfile(stderr);
    pc_log_clear_status();
    fprintf(stderr, "%s: %s%s%s\n", prog_name, out, n >= (int)sizeof(msg) ? "..." : "", tail);
    funlockfile(stderr);
}

void pc_cli_verror(const char *fmt, va_list ap)
{
    print_line(fmt, ap, "");
}

void pc_cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_line(fmt, ap, "");
    va_end(ap);
}

void pc_cli_ignore_stop_signals(void)
{
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
}

int pc_cli_sighup_ignored(void)
{
    struct sigaction old;
    return sigaction(SIGHUP, NULL, &old) == 0 && old.sa_handler == SIG_IGN;
}

void pc_cli_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_line(fmt, ap, " (see --help)");
    va_end(ap);
    exit(2);
}

void pc_cli_bad_option(char **argv)
{
    if (optopt > 0 && optopt < PC_CLI_LONG_FIRST)
        pc_cli_usage("unknown option '-%c'", optopt);
    pc_cli_usage("unknown or incomplete option '%s'", argv[optind - 1]);
}

double pc_cli_num(const char *s, const char *what, double min, double max)
{
    /* decimal only: strtod would also take hex ("0x10"), "inf", "nan" and leading blanks */
    if (s[strspn(s, "0123456789.eE+-")] != '\0')
        pc_cli_usage("bad value for %s: '%s'", what, s);
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v >= min && v <= max))
        pc_cli_usage("bad value for %s: '%s' (%.15g to %.15g)", what, s, min, max);
    return v;
}

int pc_cli_is_http_url(const char *u)
{
    size_t n = strncmp(u, "http://", 7) == 0 ? 7 : strncmp(u, "https://", 8) == 0 ? 8 : 0;
    if (n == 0 || u[n] == '\0' || u[n] == '/')
        return 0;
    for (const unsigned char *c = (const unsigned char *)u; *c != '\0'; c++)
        if (*c <= ' ' || *c == 0x7f || *c == '?' || *c == '#') /* paths are appended: a base URL only */
            return 0;
    /* and one libcurl will fetch from: a host, a port it can use (http://a:99999 and http://[::1 passed
     * and failed at the first fetch, exit 1, or an announce, unnoticed), no user:password@ (it hid the
     * real host from a reading of the URL as text: a loopback-looking origin that was not one) */
    CURLU *h = curl_url();
    char *host = NULL, *user = NULL;
    int ok = h != NULL && curl_url_set(h, CURLUPART_URL, u, 0) == CURLUE_OK &&
             curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK && host != NULL && host[0] != '\0' &&
             curl_url_get(h, CURLUPART_USER, &user, 0) == CURLUE_NO_USER;
    curl_free(host);
    curl_free(user);
    curl_url_cleanup(h);
    return ok;
}

double pc_cli_int(const char *s, const char *what, double min, double max)
{
    /* digits only, a '-' first (the range then says whether it may be negative): "1e1" or "10.0" is
     * a typo for a count */
    const char *d = s[0] == '-' ? s + 1 : s;
    if (*d == '\0' || d[strspn(d, "0123456789")] != '\0')
        pc_cli_usage("bad value for %s: '%s' (a whole number)", what, s);
    return pc_cli_num(s, what, min, max);
}

void pc_cli_log_level(const char *s)
{
    int l = pc_log_level_parse(s);
    if (l < 0)
        pc_cli_usage("--log-level takes error, warn, info or debug");
    pc_log_set_level(l);
}
