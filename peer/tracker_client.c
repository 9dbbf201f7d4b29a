/* Announces (tracker_client.h). */
#include "tracker_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pc_json.h"
#include "pc_manifest.h"

int pc_tc_encode(const pc_tc_state *s, uint64_t now_s, pc_buf *out)
{
    char pid[33], key[64];
    pc_hex(s->peer_id, 16, pid);
    pc_b64_encode(s->pk, 32, key, 0);
    json_t *o = json_object();
    json_t *c = json_object();
    if (o == NULL || c == NULL) {
        json_decref(o);
        json_decref(c);
        return PC_ENOMEM;
    }
    json_object_set_new(o, "peer_id", json_string(pid));
    json_object_set_new(o, "key", json_string(key));
    json_object_set_new(o, "port", json_integer(s->port));
    if (s->addr != NULL)
        json_object_set_new(o, "addr", json_string(s->addr));
    json_object_set_new(o, "video", json_string(s->video));
    json_object_set_new(o, "rendition", json_string(s->rendition));
    json_object_set_new(o, "event", json_string(s->event));
    if (s->media != NULL && s->media[0] != '\0')
        json_object_set_new(o, "media", json_string(s->media));
    if (s->ticket_expires > 0)
        json_object_set_new(o, "ticket_expires", json_integer((json_int_t)s->ticket_expires));
    if (s->session != NULL && strcmp(s->event, "started") != 0) {
        json_object_set_new(o, "session", json_string(s->session));
    } else {
        uint8_t sig[PC_ED25519_SIG_LEN];
        char sig64[128];
        pc_proof_sign(s->sk, now_s, sig);
        pc_b64_encode(sig, sizeof(sig), sig64, 0);
        json_t *p = json_object();
        json_object_set_new(p, "ts", json_integer((json_int_t)now_s));
        json_object_set_new(p, "sig", json_string(sig64));
        json_object_set_new(o, "proof", p);
    }
    json_object_set_new(o, "playhead_ms", json_integer(s->playhead_ms));
    if (s->need >= 0)
        json_object_set_new(o, "need", json_integer(s->need));
    if (s->have_lo >= 0 && s->have_hi >= s->have_lo) {
        json_t *r = json_pack("[[II]]", (json_int_t)s->have_lo, (json_int_t)s->have_hi);
        json_object_set_new(o, "have", r);
    }
    if (s->nbanned > 0) {
        json_t *b = json_array();
        for (uint32_t i = 0; i < s->nbanned && i < PC_TC_BANNED_MAX; i++) {
            char k64[64];
            pc_b64_encode(s->banned[i], PC_ED25519_PK_LEN, k64, 0);
            json_array_append_new(b, json_string(k64));
        }
        json_object_set_new(o, "banned", b);
    }
    json_object_set_new(o, "up_kbps", json_integer(s->up_kbps));
    json_object_set_new(o, "numwant", json_integer(s->numwant));
    json_object_set_new(o, "seeding", json_boolean(s->seeding));
    json_object_set_new(c, "bytes_cdn", json_integer((json_int_t)s->bytes_cdn));
    json_object_set_new(c, "bytes_p2p", json_integer((json_int_t)s->bytes_p2p));
    json_object_set_new(c, "bytes_up", json_integer((json_int_t)s->bytes_up));
    json_object_set_new(c, "stalls", json_integer(s->stalls));
    json_object_set_new(c, "stall_ms", json_integer(s->stall_ms));
    json_object_set_new(c, "startup_ms", json_integer(s->startup_ms));
    json_object_set_new(c, "played_ms", json_integer(s->played_ms));
    json_object_set_new(o, "counters", c);
    char *txt = pc_json_dump(o);
    json_decref(o);
    if (txt == NULL)
        return PC_ENOMEM;
    pc_buf_reset(out);
    int rc = pc_buf_append_str(out, txt);
    free(txt);
    return rc;
}

int pc_tc_decode(const char *body, size_t len, pc_tc_answer *a, char *why, size_t whylen)
{
    memset(a, 0, sizeof(*a));
    json_t *o;
    char err[160];
    if (pc_json_parse_object(body, len, PC_TC_RESPONSE_MAX, &o, err, sizeof(err)) != 0) {
        snprintf(why, whylen, "tracker answer: %s", err);
        return PC_EPARSE;
    }
    int rc = PC_EPARSE;
    const char *session = pc_json_str(o, "session");
    const char *ticket = pc_json_str(o, "ticket");
    json_t *peers = json_object_get(o, "peers");
    a->interval = pc_json_num(o, "interval", -1);
    int64_t tt = pc_json_int(o, "tracker_time", -1);
    if (!(a->interval >= 1 && a->interval <= 86400) || tt < 0 || session == NULL || strlen(session) >= sizeof(a->session) ||
        !json_is_array(peers)) {
        snprintf(why, whylen, "tracker answer lacks interval, tracker_time, session or peers");
        goto out;
    }
    a->tracker_time = (uint64_t)tt;
    snprintf(a->session, sizeof(a->session), "%s", session);
    if (ticket != NULL && pc_b64_decode(ticket, strlen(ticket), a->ticket, sizeof(a->ticket), &a->ticket_len, 1) != 0) {
        snprintf(why, whylen, "tracker answer has a malformed ticket");
        goto out;
    }
    size_t i;
    json_t *p;
    json_array_foreach(peers, i, p) {
        if (a->npeers == PC_TC_PEERS_MAX)
            break;
        const char *key = pc_json_str(p, "key"), *addr = pc_json_str(p, "addr");
        int64_t port = pc_json_int(p, "port", 0);
        pc_tc_peer *q = &a->peers[a->npeers];
        size_t kl = 0;
        if (key == NULL || addr == NULL || strlen(addr) >= sizeof(q->addr) || port < 1 || port > 65535 ||
            pc_b64_decode(key, strlen(key), q->key, sizeof(q->key), &kl, 0) != 0 || kl != 32)
            continue;
        snprintf(q->addr, sizeof(q->addr), "%s", addr);
        q->port = (uint16_t)port;
        q->seeding = json_is_true(json_object_get(p, "seeding"));
        a->npeers++;
    }
    rc = 0;
out:
    json_decref(o);
    return rc;
}

struct pc_tc_call {
    CURL *easy;
    struct curl_slist *headers;
    pc_buf resp;
    char *body;
    char err[CURL_ERROR_SIZE];
    char why[CURL_ERROR_SIZE + 128];
    const char *from;
    pc_tc_done_fn done;
    void *arg;
};

static void call_free(pc_tc_call *c)
{
    curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->headers);
    pc_buf_clear(&c->resp);
    free(c->body);
    free(c);
}

static size_t to_buf(char *p, size_t sz, size_t n, void *arg)
{
    pc_tc_call *c = arg;
    return pc_buf_append(&c->resp, p, sz * n) == 0 ? sz * n : 0;
}

static void on_done(void *arg, CURL *easy, CURLcode rc)
{
    pc_tc_call *c = arg;
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_WRITE_ERROR) /* to_buf refused it: over the answer's limit */
        snprintf(c->err, sizeof(c->err), "the tracker's answer is larger than the %zu bytes accepted for it",
                 c->resp.max);
    if (status == 0) {
        const char *why = c->err[0] != '\0' ? c->err : curl_easy_strerror(rc);
        long os_err = 0;
        curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &os_err);
        if (c->from != NULL && (rc == CURLE_INTERFACE_FAILED ||
                                (rc == CURLE_COULDNT_CONNECT && os_err != ECONNREFUSED && os_err != ETIMEDOUT &&
                                 os_err != ECONNRESET && os_err != EHOSTUNREACH))) {
            /* a peer bound to one address announces from it: a tracker it cannot reach from there (another
             * family: libcurl finds no address to bind, and says nothing more). Not a tracker that is down,
             * which refuses the connection, and was blamed on the address (found by review) */
            snprintf(c->why, sizeof(c->why), "announces go from the --listen address %s: %s", c->from + 5, why);
            why = c->why;
        }
        long sent = 0; /* nothing of the request left (no connection, no name): the tracker never saw it */
        curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &sent);
        c->done(c->arg, sent > 0 ? 0 : -1, why, strlen(why));
    } else
        c->done(c->arg, status, c->resp.data != NULL ? c->resp.data : "", c->resp.len);
    call_free(c);
}

int pc_tc_post(pc_http_client *http, const char *tracker_url, const char *body, size_t len, long timeout_s,
               const char *from, pc_tc_done_fn done, void *arg, pc_tc_call **out)
{
    *out = NULL;
    pc_tc_call *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return PC_ENOMEM;
    pc_buf_init(&c->resp, PC_TC_RESPONSE_MAX);
    c->easy = pc_curl_easy_new();
    c->body = malloc(len + 1);
    /* as long as a manifest's tracker URL may be: at 1024 bytes, a tracker URL of 1014 to 2048
     * characters, which the manifest and --tracker allow, made every announce fail here (found by review) */
    char url[PC_MANIFEST_MAX_TRACKER_URL + sizeof("/announce")];
    size_t ul = strlen(tracker_url);
    while (ul > 0 && tracker_url[ul - 1] == '/')
        ul--;
    if (c->easy == NULL || c->body == NULL || ul > PC_MANIFEST_MAX_TRACKER_URL) {
        int rc = c->easy == NULL || c->body == NULL ? PC_ENOMEM : PC_EINVAL;
        call_free(c);
        return rc;
    }
    memcpy(c->body, body, len);
    snprintf(url, sizeof(url), "%.*s/announce", (int)ul, tracker_url);
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    c->done = done;
    c->arg = arg;
    curl_easy_setopt(c->easy, CURLOPT_URL, url);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, to_buf);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->err);
    if (from != NULL)
        curl_easy_setopt(c->easy, CURLOPT_INTERFACE, from);
    c->from = from; /* the caller's, alive while the call is */
    if (pc_http_client_add(http, c->easy, on_done, c) != 0) {
        call_free(c);
        return PC_ENET;
    }
    *out = c;
    return 0;
}

void pc_tc_cancel(pc_http_client *http, pc_tc_call *c)
{
    pc_http_client_cancel(http, c->easy);
    call_free(c);
}
