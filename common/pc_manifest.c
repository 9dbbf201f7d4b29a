/* p2p.json codec; see pc_manifest.h. */
#include "pc_manifest.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int pc_manifest_verify(const uint8_t origin_pk[PC_ED25519_PK_LEN], const char *json, size_t len, const char *sig_b64,
                       size_t sig_len)
{
    while (sig_len > 0 && (sig_b64[sig_len - 1] == '\n' || sig_b64[sig_len - 1] == '\r' || sig_b64[sig_len - 1] == ' '))
        sig_len--;
    uint8_t sig[PC_ED25519_SIG_LEN];
    size_t n = 0;
    if (pc_b64_decode(sig_b64, sig_len, sig, sizeof(sig), &n, 0) != 0 || n != sizeof(sig))
        return PC_EPARSE;
    return pc_ed25519_verify(origin_pk, json, len, sig);
}

static int valid_url(const char *u)
{
    size_t n = strlen(u);
    if (n == 0 || n > PC_MANIFEST_MAX_URL || u[0] == '/' || strstr(u, "..") != NULL || strstr(u, "://") != NULL)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = u[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' || c == '.' ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

static int parse_file(json_t *o, pc_mf_file *f, int need_duration)
{
    const char *url = json_string_value(json_object_get(o, "url"));
    const char *hash = json_string_value(json_object_get(o, "blake2b"));
    json_t *size = json_object_get(o, "size");
    if (url == NULL || hash == NULL || !json_is_integer(size) || !valid_url(url))
        return PC_EPARSE;
    json_int_t sz = json_integer_value(size);
    if (sz <= 0)
        return PC_EPARSE;
    if ((uint64_t)sz > PC_MANIFEST_MAX_SEGMENT_BYTES)
        return PC_ETOOBIG;
    if (strlen(hash) != 2 * PC_B2_LEN || pc_unhex(hash, strlen(hash), f->blake2b, PC_B2_LEN) != 0)
        return PC_EPARSE;
    if (need_duration) {
        json_t *d = json_object_get(o, "duration");
        if (!json_is_number(d) || json_number_value(d) <= 0 || json_number_value(d) > 3600)
            return PC_EPARSE;
        f->duration = json_number_value(d);
    }
    f->size = (uint64_t)sz;
    f->url = strdup(url);
    return f->url != NULL ? 0 : PC_ENOMEM;
}

void pc_manifest_free(pc_manifest *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nrenditions; i++) {
        pc_mf_rendition *r = &m->renditions[i];
        free(r->id);
        free(r->codecs);
        free(r->init.url);
        for (size_t s = 0; s < r->nsegments; s++)
            free(r->segments[s].url);
        free(r->segments);
    }
    free(m->renditions);
    for (size_t i = 0; i < m->nsubtitles; i++) {
        free(m->subtitles[i].id);
        free(m->subtitles[i].file.url);
    }
    free(m->subtitles);
    free(m->video);
    free(m->tracker_url);
    free(m);
}

int pc_manifest_parse(const char *json, size_t len, pc_manifest **out)
{
    *out = NULL;
    if (len > PC_MANIFEST_MAX_BYTES)
        return PC_ETOOBIG;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        return PC_EPARSE;
    }
    int r = PC_EPARSE;
    pc_manifest *m = calloc(1, sizeof(*m));
    json_t *rs = json_object_get(root, "renditions");
    const char *video = json_string_value(json_object_get(root, "video"));
    if (m == NULL) {
        r = PC_ENOMEM;
        goto fail;
    }
    if (json_integer_value(json_object_get(root, "version")) != 1 || video == NULL || !json_is_array(rs) ||
        json_array_size(rs) == 0)
        goto fail;
    if (json_array_size(rs) > PC_MANIFEST_MAX_RENDITIONS) {
        r = PC_ETOOBIG;
        goto fail;
    }
    m->video = strdup(video);
    m->renditions = calloc(json_array_size(rs), sizeof(*m->renditions));
    if (m->video == NULL || m->renditions == NULL) {
        r = PC_ENOMEM;
        goto fail;
    }
    size_t i;
    json_t *rj;
    json_array_foreach(rs, i, rj)
    {
        pc_mf_rendition *rd = &m->renditions[m->nrenditions++];
        const char *id = json_string_value(json_object_get(rj, "id"));
        const char *codecs = json_string_value(json_object_get(rj, "codecs"));
        json_t *segs = json_object_get(rj, "segments");
        if (id == NULL || codecs == NULL || !json_is_array(segs) || json_array_size(segs) == 0 || strlen(id) > 16)
            goto fail;
        if (json_array_size(segs) > PC_MANIFEST_MAX_SEGMENTS) {
            r = PC_ETOOBIG;
            goto fail;
        }
        rd->id = strdup(id);
        rd->codecs = strdup(codecs);
        const char *type = json_string_value(json_object_get(rj, "type"));
        rd->audio = type != NULL && strcmp(type, "audio") == 0;
        rd->width = (int)json_integer_value(json_object_get(rj, "width"));
        rd->height = (int)json_integer_value(json_object_get(rj, "height"));
        json_int_t bw = json_integer_value(json_object_get(rj, "bandwidth"));
        rd->bandwidth = bw > 0 && bw < 1000000000 ? (uint32_t)bw : 0;
        rd->segments = calloc(json_array_size(segs), sizeof(*rd->segments));
        if (rd->id == NULL || rd->codecs == NULL || rd->segments == NULL) {
            r = PC_ENOMEM;
            goto fail;
        }
        int fr = parse_file(json_object_get(rj, "init"), &rd->init, 0);
        if (fr != 0) {
            r = fr;
            goto fail;
        }
        size_t k;
        json_t *sj;
        json_array_foreach(segs, k, sj)
        {
            fr = parse_file(sj, &rd->segments[rd->nsegments], 1);
            if (fr != 0) {
                r = fr;
                goto fail;
            }
            rd->nsegments++;
        }
    }
    json_t *subs = json_object_get(root, "subtitles");
    if (subs != NULL && !json_is_array(subs))
        goto fail;
    if (json_array_size(subs) > PC_MANIFEST_MAX_SUBTITLES) {
        r = PC_ETOOBIG;
        goto fail;
    }
    if (json_array_size(subs) > 0 && (m->subtitles = calloc(json_array_size(subs), sizeof(*m->subtitles))) == NULL) {
        r = PC_ENOMEM;
        goto fail;
    }
    json_array_foreach(subs, i, rj)
    {
        const char *id = json_string_value(json_object_get(rj, "id"));
        size_t il = id != NULL ? strlen(id) : 0;
        if (il == 0 || il > 16 || strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789") != il)
            goto fail;
        pc_mf_subtitle *sb = &m->subtitles[m->nsubtitles++];
        if ((sb->id = strdup(id)) == NULL) {
            r = PC_ENOMEM;
            goto fail;
        }
        int fr = parse_file(json_object_get(rj, "file"), &sb->file, 0);
        if (fr == 0 && sb->file.size > PC_MANIFEST_MAX_SUBTITLE_BYTES)
            fr = PC_ETOOBIG;
        if (fr == 0 && (strncmp(sb->file.url, id, il) != 0 || sb->file.url[il] != '/'))
            fr = PC_EPARSE; /* in the track's directory, beside its playlist */
        if (fr != 0) {
            r = fr;
            goto fail;
        }
    }
    json_t *tr = json_object_get(root, "tracker");
    if (json_is_object(tr)) {
        const char *url = json_string_value(json_object_get(tr, "url"));
        const char *key = json_string_value(json_object_get(tr, "ed25519"));
        size_t n = 0;
        if (url == NULL || key == NULL || strlen(url) > PC_MANIFEST_MAX_TRACKER_URL ||
            pc_b64_decode(key, strlen(key), m->tracker_pk, sizeof(m->tracker_pk), &n, 0) != 0 || n != PC_ED25519_PK_LEN)
            goto fail;
        m->tracker_url = strdup(url);
        if (m->tracker_url == NULL) {
            r = PC_ENOMEM;
            goto fail;
        }
        m->has_tracker = 1;
    }
    json_decref(root);
    *out = m;
    return 0;
fail:
    json_decref(root);
    pc_manifest_free(m);
    return r;
}
