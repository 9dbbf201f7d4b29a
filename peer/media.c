/* The composite media view of a signed manifest (media.h). */
#include "media.h"

#include <stdlib.h>
#include <string.h>

static const char composite_context[] = "peercdn composite v1"; /* hashed with its NUL */

static void combine(const uint8_t video[32], const uint8_t audio[32], uint8_t out[32])
{
    pc_b2_state st;
    pc_b2_init(&st);
    pc_b2_update(&st, composite_context, sizeof(composite_context));
    pc_b2_update(&st, video, 32);
    pc_b2_update(&st, audio, 32);
    pc_b2_final(&st, out);
}

void pc_peer_media_clear(pc_peer_media *pm)
{
    free(pm->dur);
    for (int r = 0; r < PC_RUNGS_MAX; r++) {
        free(pm->size[r]);
        free(pm->hash[r]);
    }
    memset(pm, 0, sizeof(*pm));
}

int pc_peer_media_init(pc_peer_media *pm, const pc_manifest *mf, const char **why)
{
    memset(pm, 0, sizeof(*pm));
    pm->mf = mf;
    pm->audio = -1;
    uint32_t nr = 0;
    for (size_t i = 0; i < mf->nrenditions; i++) {
        if (mf->renditions[i].audio) {
            if (pm->audio >= 0) { /* the composite carries one audio track; a second would be served as it */
                *why = "the manifest has more than one audio rendition";
                return PC_EINVAL;
            }
            pm->audio = (int)i;
            continue;
        }
        if (nr == PC_RUNGS_MAX) {
            *why = "the manifest has more video renditions than the engine's limit";
            return PC_EINVAL;
        }
        pm->rend[nr++] = (uint32_t)i;
    }
    if (nr == 0) {
        *why = "the manifest has no video rendition";
        return PC_EINVAL;
    }
    const pc_mf_rendition *r0 = &mf->renditions[pm->rend[0]];
    size_t n = r0->nsegments;
    const pc_mf_rendition *au = pm->audio >= 0 ? &mf->renditions[pm->audio] : NULL;
    if (n == 0 || n > PC_ENGINE_SEGMENTS_MAX) {
        *why = "the manifest's segment count is out of range";
        return PC_EINVAL;
    }
    if (au != NULL && au->nsegments != n) {
        *why = "the audio track has another segment count than the video";
        return PC_EINVAL;
    }
    pm->dur = calloc(n, sizeof(uint32_t));
    if (pm->dur == NULL)
        return PC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        double us = r0->segments[i].duration * 1e6 + 0.5;
        if (!(us >= 1 && us < 4e9)) {
            *why = "a segment duration is out of range";
            pc_peer_media_clear(pm);
            return PC_EINVAL;
        }
        pm->dur[i] = (uint32_t)us;
        pm->duration_us += pm->dur[i];
    }
    pm->m.n_rungs = nr;
    pm->m.n_segments = (uint32_t)n;
    pm->m.seg_dur_us = pm->dur;
    for (uint32_t q = 0; q < nr; q++) {
        const pc_mf_rendition *r = &mf->renditions[pm->rend[q]];
        if (r->nsegments != n) {
            *why = "the video renditions have different segment counts";
            pc_peer_media_clear(pm);
            return PC_EINVAL;
        }
        pm->size[q] = calloc(n, sizeof(uint32_t));
        pm->hash[q] = calloc(n, 32);
        if (pm->size[q] == NULL || pm->hash[q] == NULL) {
            pc_peer_media_clear(pm);
            return PC_ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            double d = r->segments[i].duration * 1e6 + 0.5;
            if (d < (double)pm->dur[i] - 1000 || d > (double)pm->dur[i] + 1000) {
                *why = "the video renditions' segments do not align";
                pc_peer_media_clear(pm);
                return PC_EINVAL;
            }
            /* each part ≤ PC_MANIFEST_MAX_SEGMENT_BYTES (64 MiB): the sum fits in 32 bits */
            pm->size[q][i] = (uint32_t)(r->segments[i].size + (au != NULL ? au->segments[i].size : 0));
            if (au != NULL)
                combine(r->segments[i].blake2b, au->segments[i].blake2b, pm->hash[q] + 32 * i);
            else
                memcpy(pm->hash[q] + 32 * i, r->segments[i].blake2b, 32);
        }
        if (au != NULL)
            combine(r->init.blake2b, au->init.blake2b, pm->init_hash[q]);
        else
            memcpy(pm->init_hash[q], r->init.blake2b, 32);
        pc_media_rung *mr = &pm->m.rung[q];
        uint64_t bw = (uint64_t)r->bandwidth + (au != NULL ? au->bandwidth : 0);
        mr->bandwidth = bw > UINT32_MAX ? UINT32_MAX : (uint32_t)bw;
        mr->init_size = (uint32_t)(r->init.size + (au != NULL ? au->init.size : 0));
        mr->init_hash = pm->init_hash[q];
        mr->seg_size = pm->size[q];
        mr->seg_hash = pm->hash[q];
    }
    for (uint32_t q = 1; q < nr; q++)
        if (pm->m.rung[q].bandwidth < pm->m.rung[q - 1].bandwidth) {
            *why = "the video renditions are not in ascending bandwidth";
            pc_peer_media_clear(pm);
            return PC_EINVAL;
        }
    return 0;
}

int pc_peer_media_parts(const pc_peer_media *pm, uint32_t rung, uint32_t seg, pc_part parts[2])
{
    const pc_mf_rendition *v = &pm->mf->renditions[pm->rend[rung]];
    const pc_mf_rendition *a = pm->audio >= 0 ? &pm->mf->renditions[pm->audio] : NULL;
    const pc_mf_file *fv = seg == PC_SEG_INIT ? &v->init : &v->segments[seg];
    parts[0] = (pc_part){.url = fv->url, .offset = 0, .size = (uint32_t)fv->size, .hash = fv->blake2b};
    if (a == NULL)
        return 1;
    const pc_mf_file *fa = seg == PC_SEG_INIT ? &a->init : &a->segments[seg];
    parts[1] = (pc_part){.url = fa->url, .offset = (uint32_t)fv->size, .size = (uint32_t)fa->size, .hash = fa->blake2b};
    return 2;
}

uint32_t pc_peer_media_size(const pc_peer_media *pm, uint32_t rung, uint32_t seg)
{
    return seg == PC_SEG_INIT ? pm->m.rung[rung].init_size : pm->size[rung][seg];
}

void pc_peer_media_hash(const pc_peer_media *pm, uint32_t rung, uint32_t seg, const uint8_t *data, size_t len,
                        uint8_t out[32])
{
    pc_part parts[2];
    int np = pc_peer_media_parts(pm, rung, seg, parts);
    if (np == 1 || len != pc_peer_media_size(pm, rung, seg)) { /* a wrong length cannot match anyway */
        pc_blake2b256(data, len, out);
        return;
    }
    uint8_t hv[32], ha[32];
    pc_blake2b256(data, parts[0].size, hv);
    pc_blake2b256(data + parts[0].size, parts[1].size, ha);
    combine(hv, ha, out);
}

int pc_peer_media_rung(const pc_peer_media *pm, const char *id)
{
    for (uint32_t q = 0; q < pm->m.n_rungs; q++)
        if (strcmp(pm->mf->renditions[pm->rend[q]].id, id) == 0)
            return (int)q;
    return -1;
}
