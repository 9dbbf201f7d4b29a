/* Video admission through the origin's catalog; see admit.h. */
#include "admit.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_buf.h"
#include "pc_http_client.h"
#include "pc_http_server.h"
#include "pc_log.h"
#include "pc_ticket.h"

#define SLOTS (2 * ADMIT_TABLE_MAX) /* open addressing at half load at most */
#define NONE UINT32_MAX
#define URL_MAX 1200

enum { E_FREE, E_PENDING, E_OK, E_MISSING, E_ERROR };

typedef struct waiter {
    h2o_req_t *req; /* NULL once the client went away */
    void *guard;
    struct waiter *next;
} waiter;

typedef struct entry {
    char video[PC_VIDEO_ID_MAX + 1];
    uint64_t hash, until_us; /* until_us: when a remembered refusal is asked again */
    int state;
    uint32_t slot;
    CURL *easy; /* while E_PENDING */
    pc_buf body;
    waiter *w, **wtail;
    pc_admit *a;
} entry;

struct pc_admit {
    pc_http_client *http;
    char origin[URL_MAX];
    pc_admit_resume_fn resume;
    void *arg;
    unsigned char hkey[crypto_shorthash_KEYBYTES]; /* secret: ids cannot be chosen to collide */
    entry ents[ADMIT_TABLE_MAX];
    uint32_t free_list[ADMIT_TABLE_MAX], nfree;
    uint32_t slots[SLOTS]; /* entry index + 1; 0 empty */
    uint32_t nfetch, nparked;
    uint32_t hand; /* where the next eviction looks (a clock over the entries) */
    uint64_t lookups, refused;
};

static uint64_t hash_id(const pc_admit *a, const char *video)
{
    unsigned char h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const unsigned char *)video, strlen(video), a->hkey);
    uint64_t v;
    memcpy(&v, h, sizeof(v));
    return v;
}

static uint32_t find(const pc_admit *a, const char *video, uint64_t h)
{
    for (uint32_t i = (uint32_t)h & (SLOTS - 1);; i = (i + 1) & (SLOTS - 1)) {
        uint32_t e = a->slots[i];
        if (e == 0)
            return NONE;
        if (a->ents[e - 1].hash == h && strcmp(a->ents[e - 1].video, video) == 0)
            return e - 1;
    }
}

/* Removes an entry whose lookup is not running: the slot by backward shift, the entry freed. */
static void forget(pc_admit *a, uint32_t idx)
{
    entry *e = &a->ents[idx];
    uint32_t i = e->slot;
    for (uint32_t j = (i + 1) & (SLOTS - 1); a->slots[j] != 0; j = (j + 1) & (SLOTS - 1)) {
        entry *q = &a->ents[a->slots[j] - 1];
        uint32_t home = (uint32_t)q->hash & (SLOTS - 1);
        int between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            a->slots[i] = a->slots[j];
            q->slot = i;
            i = j;
        }
    }
    a->slots[i] = 0;
    e->state = E_FREE;
    a->free_list[a->nfree++] = idx;
}

/* The table is full: the next remembered answer the clock hand finds goes (answers are only a cache;
 * at most ADMIT_FETCH_MAX entries are lookups in flight, so one is always found). */
static void evict(pc_admit *a)
{
    for (uint32_t k = 0; k < ADMIT_TABLE_MAX; k++) {
        uint32_t i = a->hand;
        a->hand = (a->hand + 1) % ADMIT_TABLE_MAX;
        if (a->ents[i].state != E_FREE && a->ents[i].state != E_PENDING) {
            forget(a, i);
            return;
        }
    }
}

static size_t body_cb(char *p, size_t size, size_t n, void *arg)
{
    entry *e = arg;
    return pc_buf_append(&e->body, p, size * n) == 0 ? size * n : 0;
}

/* The answer for a finished lookup: E_OK for 200 with state "ready"; a refusal with how long it is kept. */
static int verdict(entry *e, CURLcode rc, long status, uint64_t *keep_s)
{
    if (rc == CURLE_OK && (status == 404 || status == 410)) {
        *keep_s = ADMIT_MISSING_S;
        return E_MISSING;
    }
    if (rc != CURLE_OK || status != 200) {
        *keep_s = ADMIT_ERROR_S;
        return E_ERROR;
    }
    json_t *doc = json_loadb(e->body.data != NULL ? e->body.data : "", e->body.len, 0, NULL);
    const char *st = json_string_value(json_object_get(doc, "state"));
    int ready = st != NULL && strcmp(st, "ready") == 0, known = st != NULL;
    json_decref(doc);
    *keep_s = known ? ADMIT_NOT_READY_S : ADMIT_ERROR_S; /* unused for E_OK (dropped once resumed) */
    return ready ? E_OK : known ? E_MISSING : E_ERROR;
}

static void on_lookup_done(void *arg, CURL *easy, CURLcode rc)
{
    entry *e = arg;
    pc_admit *a = e->a;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    uint64_t keep_s = 0;
    e->state = verdict(e, rc, status, &keep_s);
    e->until_us = uv_hrtime() / 1000 + keep_s * 1000000;
    if (e->state == E_MISSING)
        a->refused++;
    if (e->state == E_ERROR)
        PC_LOGW("tracker", "cannot ask the origin about video %s: %s (HTTP %ld); its announces get 503", e->video,
                rc != CURLE_OK ? curl_easy_strerror(rc) : "unexpected answer", status);
    curl_easy_cleanup(easy);
    e->easy = NULL;
    pc_buf_clear(&e->body);
    a->nfetch--;
    /* resume the parked announces: each one finds the answer remembered; an admitted video's swarm is
     * the record from then on, so its answer is not kept past them */
    int admitted = e->state == E_OK;
    waiter *w = e->w;
    e->w = NULL;
    e->wtail = &e->w;
    while (w != NULL) {
        waiter *next = w->next;
        a->nparked--;
        if (w->req != NULL) {
            h2o_req_t *req = w->req;
            pc_http_req_unguard(w->guard);
            free(w);
            a->resume(a->arg, req);
        } else {
            free(w);
        }
        w = next;
    }
    if (admitted)
        forget(a, (uint32_t)(e - a->ents));
}

static int start_lookup(pc_admit *a, entry *e)
{
    char url[URL_MAX + 32 + PC_VIDEO_ID_MAX];
    size_t ol = strlen(a->origin);
    snprintf(url, sizeof(url), "%s%sapi/videos/%s", a->origin, ol > 0 && a->origin[ol - 1] == '/' ? "" : "/",
             e->video);
    CURL *c = pc_curl_easy_new();
    if (c == NULL)
        return PC_ENOMEM;
    pc_buf_init(&e->body, ADMIT_BODY_MAX);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, e);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)ADMIT_WAIT_S);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
#if LIBCURL_VERSION_NUM >= 0x075700
    /* a name lookup still running at the time limit is abandoned, not waited for on the loop (the
     * threaded resolver otherwise joins its thread: a hung DNS server froze the tracker) */
    curl_easy_setopt(c, CURLOPT_QUICK_EXIT, 1L);
#endif
    if (pc_http_client_add(a->http, c, on_lookup_done, e) != 0) {
        curl_easy_cleanup(c);
        pc_buf_clear(&e->body);
        return PC_ENOMEM;
    }
    e->easy = c;
    a->nfetch++;
    a->lookups++;
    return 0;
}

static int park(pc_admit *a, entry *e, h2o_req_t *req)
{
    if (a->nparked >= ADMIT_PARKED_MAX)
        return PC_ELIMIT;
    waiter *w = calloc(1, sizeof(*w));
    if (w == NULL || pc_http_req_guard(req, &w->req, &w->guard) != 0) {
        free(w);
        return PC_ENOMEM;
    }
    *e->wtail = w;
    e->wtail = &w->next;
    a->nparked++;
    return PC_EAGAIN;
}

int pc_admit_check(pc_admit *a, const char *video, h2o_req_t *req, uint64_t now_us)
{
    uint64_t h = hash_id(a, video);
    uint32_t idx = find(a, video, h);
    if (idx != NONE) {
        entry *e = &a->ents[idx];
        if (e->state == E_PENDING)
            return park(a, e, req);
        if (e->state == E_OK) /* only while the announces that waited for it are resumed */
            return 0;
        if (e->until_us > now_us)
            return e->state == E_MISSING ? PC_ENOENT : PC_ENET;
        forget(a, idx); /* asked again below */
    }
    if (a->nfetch >= ADMIT_FETCH_MAX)
        return PC_ELIMIT;
    if (a->nfree == 0)
        evict(a);
    idx = a->free_list[--a->nfree];
    entry *e = &a->ents[idx];
    memset(e, 0, sizeof(*e));
    snprintf(e->video, sizeof(e->video), "%s", video);
    e->hash = h;
    e->a = a;
    e->wtail = &e->w;
    e->state = E_PENDING;
    uint32_t i = (uint32_t)h & (SLOTS - 1);
    while (a->slots[i] != 0)
        i = (i + 1) & (SLOTS - 1);
    a->slots[i] = idx + 1;
    e->slot = i;
    int rc = start_lookup(a, e);
    if (rc == 0)
        rc = park(a, e, req);
    if (rc != PC_EAGAIN && e->easy == NULL) /* nothing started: nothing to remember */
        forget(a, idx);
    return rc;
}

pc_admit *pc_admit_new(uv_loop_t *loop, const char *origin, pc_admit_resume_fn resume, void *arg)
{
    if (strlen(origin) >= URL_MAX)
        return NULL;
    pc_admit *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->http = pc_http_client_new(loop);
    if (a->http == NULL) {
        free(a);
        return NULL;
    }
    snprintf(a->origin, sizeof(a->origin), "%s", origin);
    a->resume = resume;
    a->arg = arg;
    crypto_shorthash_keygen(a->hkey);
    for (uint32_t i = 0; i < ADMIT_TABLE_MAX; i++)
        a->free_list[a->nfree++] = ADMIT_TABLE_MAX - 1 - i;
    return a;
}

void pc_admit_free(pc_admit *a)
{
    if (a == NULL)
        return;
    for (uint32_t i = 0; i < ADMIT_TABLE_MAX; i++) {
        entry *e = &a->ents[i];
        if (e->state != E_PENDING)
            continue;
        pc_http_client_cancel(a->http, e->easy);
        curl_easy_cleanup(e->easy);
        pc_buf_clear(&e->body);
        for (waiter *w = e->w, *next; w != NULL; w = next) {
            next = w->next;
            h2o_req_t *req = w->req;
            if (req != NULL)
                pc_http_req_unguard(w->guard);
            free(w);
            if (req != NULL)
                a->resume(a->arg, req);
        }
    }
    pc_http_client_free(a->http);
    free(a);
}

void pc_admit_counts(const pc_admit *a, uint64_t *lookups, uint64_t *refused)
{
    *lookups = a != NULL ? a->lookups : 0;
    *refused = a != NULL ? a->refused : 0;
}
