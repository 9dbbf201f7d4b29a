/* libcurl multi on libuv; see pc_http_client.h. */
#include "pc_http_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_log.h"

struct pc_http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    int closing;
};

struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    pc_http_client *c;
};

struct xfer {
    pc_http_done_fn done;
    void *arg;
};

static void check_done(pc_http_client *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result;
        struct xfer *x = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(c->multi, e);
        curl_easy_setopt(e, CURLOPT_PRIVATE, NULL);
        if (x != NULL) {
            pc_http_done_fn done = x->done;
            void *arg = x->arg;
            free(x);
            done(arg, e, rc);
        }
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct sock_ctx *s = p->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(s->c->multi, s->fd, flags, &running);
    check_done(s->c);
}

static void on_timer(uv_timer_t *t)
{
    pc_http_client *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    pc_http_client *c = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static void free_sock(uv_handle_t *h)
{
    free(h->data);
}

static int socket_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
    (void)e;
    pc_http_client *c = userp;
    struct sock_ctx *s = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, free_sock);
            curl_multi_assign(c->multi, fd, NULL);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL)
            return -1;
        s->fd = fd;
        s->c = c;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        curl_multi_assign(c->multi, fd, s);
    }
    int ev = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        ev |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

void pc_curl_easy_base(CURL *e)
{
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075700 /* 7.87.0 */
    curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
#endif
}

CURL *pc_curl_easy_new(void)
{
    CURL *e = curl_easy_init();
    if (e != NULL)
        pc_curl_easy_base(e);
    return e;
}

pc_http_client *pc_http_client_new(uv_loop_t *loop)
{
    pc_http_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        free(c);
        return NULL;
    }
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    return c;
}

int pc_http_client_add(pc_http_client *c, CURL *easy, pc_http_done_fn done, void *arg)
{
    struct xfer *x = malloc(sizeof(*x));
    if (x == NULL)
        return PC_ENOMEM;
    x->done = done;
    x->arg = arg;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)x);
    if (curl_multi_add_handle(c->multi, easy) != CURLM_OK) {
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        free(x);
        return PC_EINTERNAL;
    }
    return 0;
}

void pc_http_client_cancel(pc_http_client *c, CURL *easy)
{
    struct xfer *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    curl_multi_remove_handle(c->multi, easy);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    free(x);
}

static void free_client(uv_handle_t *h)
{
    free(h->data);
}

void pc_http_client_free(pc_http_client *c)
{
    if (c == NULL)
        return;
    curl_multi_cleanup(c->multi); /* removes sockets: socket_cb closes the polls */
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, free_client);
}

static size_t to_buf(char *p, size_t size, size_t n, void *user)
{
    return pc_buf_append(user, p, size * n) == 0 ? size * n : 0;
}

int pc_http_get_blocking(const char *base, const char *path, long timeout_s, pc_buf *body, long *status, char *url,
                         size_t urllen, const char **why)
{
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    *status = 0;
    *why = "";
    int n = snprintf(url, urllen, "%.*s/%s", (int)bl, base, path);
    if (n < 0 || (size_t)n >= urllen) {
        *why = "URL too long";
        return PC_ETOOBIG;
    }
    CURL *c = pc_curl_easy_new();
    if (c == NULL) {
        *why = "out of memory";
        return PC_ENOMEM;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_buf);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L); /* libcurl follows any number by default */
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
    CURLcode cr = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    if (cr != CURLE_OK) {
        /* the one way to_buf refuses bytes, but for memory: more than the caller takes */
        static _Thread_local char over[96];
        if (cr == CURLE_WRITE_ERROR && body->max != 0) {
            snprintf(over, sizeof(over), "the answer is larger than the %zu bytes accepted for it", body->max);
            *why = over;
        } else {
            *why = curl_easy_strerror(cr);
        }
        return PC_ENET;
    }
    return 0;
}
