/*
 * HTTP client glue: libcurl's multi interface driven by a libuv loop
 * (socket and timer callbacks, as in curl's multi-uv example), so transfers
 * share the loop with servers and timers. The caller prepares each easy
 * handle (URL, headers, callbacks) and gets one completion callback.
 */
#ifndef PC_HTTP_CLIENT_H
#define PC_HTTP_CLIENT_H

#include <curl/curl.h>
#include <uv.h>

#include "pc_buf.h"
#include "pc_error.h"

typedef struct pc_http_client pc_http_client;
typedef void (*pc_http_done_fn)(void *arg, CURL *easy, CURLcode rc);

/* A libcurl easy handle for any of our transfers (NULL on ENOMEM): no signals, and one that is cancelled
 * or times out while its host name is still being resolved does not wait for the resolver thread
 * (CURLOPT_QUICK_EXIT): it used to, so a slow DNS answer froze a peer's whole loop, held its exit after
 * SIGTERM for as long, and outlasted the timeouts we set (found by review; 8 s of lookup, 7 s to exit). */
CURL *pc_curl_easy_new(void);
/* Those two options again, on a handle curl_easy_reset cleared. */
void pc_curl_easy_base(CURL *e);

/* NULL on ENOMEM. curl_global_init must have run. */
pc_http_client *pc_http_client_new(uv_loop_t *loop);
/* Aborts transfers still running (their callbacks are not called) and frees once handles closed. */
void pc_http_client_free(pc_http_client *c);
/* Starts |easy|; |done| runs once on the loop when it finishes. The caller keeps ownership of |easy|. */
int pc_http_client_add(pc_http_client *c, CURL *easy, pc_http_done_fn done, void *arg) PC_MUST_CHECK;
/* Cancels a running transfer (no callback). */
void pc_http_client_cancel(pc_http_client *c, CURL *easy);

/*
 * A blocking GET of |base| + "/" + |path| (a trailing '/' of |base| is not doubled), for command-line
 * tools and worker threads, never on an event loop. Redirects are followed. The body goes to |body|,
 * whose ceiling bounds it (a larger answer fails). |url| (≥ 64 bytes) receives the URL used, for
 * messages. Returns 0 with |*status| set when an answer arrived, or PC_ENET with libcurl's sentence
 * in |*why| (PC_ENOMEM, PC_ETOOBIG for a URL longer than |urllen|).
 */
int pc_http_get_blocking(const char *base, const char *path, long timeout_s, pc_buf *body, long *status, char *url,
                         size_t urllen, const char **why) PC_MUST_CHECK;

#endif
