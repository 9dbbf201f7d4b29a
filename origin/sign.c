/*
 * sign: hashes every published file (BLAKE2b-256), writes p2p.json (the
 * swarm's signed list of segments, see docs/manifest.md), its Ed25519
 * signature p2p.json.sig, and .etags, the content-hash ETag index the media
 * server reads. The tracker's key comes from --tracker-key or is fetched
 * from the tracker once; a tracker that cannot be reached is a retryable
 * failure.
 *
 * publish: moves work/<id>/out to media/<id> atomically (rename) and returns
 * the description the API serves. Publishing is idempotent, so a crash
 * between the rename and the database update repeats harmlessly.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "av_util.h"
#include "job.h"
#include "media.h"
#include "pc_buf.h"
#include "pc_fs.h"
#include "pc_http_client.h"
#include "pc_json.h"
#include "pc_log.h"
#include "pc_manifest.h"

static int file_entry(pc_job *j, const char *rel, double duration, json_t **out, pc_buf *etags)
{
    char path[4300], hex[2 * PC_B2_LEN + 1];
    snprintf(path, sizeof(path), "%s/%s", j->out_dir, rel);
    uint8_t h[PC_B2_LEN];
    uint64_t size = 0;
    int r = pc_blake2b256_file(path, h, &size);
    if (r != 0)
        return pc_job_fail(j, r, 0, "io_error", "cannot hash %s", rel);
    pc_hex(h, sizeof(h), hex);
    if (pc_buf_printf(etags, "%s %.16s\n", rel, hex) != 0)
        return pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
    *out = duration > 0 ? json_pack("{s:s, s:f, s:I, s:s}", "url", rel, "duration", duration, "size", (json_int_t)size,
                                    "blake2b", hex)
                        : json_pack("{s:s, s:I, s:s}", "url", rel, "size", (json_int_t)size, "blake2b", hex);
    return 0;
}

/* GET <tracker>/api/tracker-key → base64 key, validated to 32 bytes. */
static int fetch_tracker_key(pc_job *j, char *out, size_t outlen)
{
    char url[2200];
    pc_buf body;
    pc_buf_init(&body, 4096);
    long status = 0;
    const char *why = "";
    int cr = pc_http_get_blocking(j->env->tracker_url, "api/tracker-key", 10, &body, &status, url, sizeof(url), &why);
    int r = 0;
    if (cr != 0 || status != 200) {
        r = pc_job_fail(j, PC_ENET, 0, "tracker_unreachable", "cannot fetch the tracker key from %s (%s, HTTP %ld)", url,
                        cr != 0 ? why : "answered", status);
    } else {
        json_t *o = NULL;
        const char *k = NULL;
        uint8_t key[PC_ED25519_PK_LEN];
        size_t n = 0;
        if (pc_json_parse_object(body.data, body.len, 4096, &o, NULL, 0) != 0 || (k = pc_json_str(o, "ed25519")) == NULL ||
            pc_b64_decode(k, strlen(k), key, sizeof(key), &n, 0) != 0 || n != sizeof(key))
            r = pc_job_fail(j, PC_EPARSE, 0, "tracker_unreachable", "the tracker at %s returned no valid key", url);
        else
            snprintf(out, outlen, "%s", k);
        const char *mk = r == 0 ? pc_json_str(o, "media_key") : NULL;
        if (r == 0 && j->env->media_key_id != NULL && (mk == NULL || strcmp(mk, j->env->media_key_id) != 0))
            /* said with every video signed: the operator sees it where the video's publication is logged */
            PC_LOGW("sign", "video %s: the tracker at %s %s, so its swarm serves the video's segments to any viewer, "
                            "without the signed URLs' token (run it with --media-key DATA/keys/media.key)",
                    j->video_id, j->env->tracker_url,
                    mk == NULL ? "does not check media tokens" : "checks media tokens with another key than this origin's");
        json_decref(o);
    }
    pc_buf_clear(&body);
    return r;
}

/* An ETag for |rel| in |etags| when the file is there (*|present| says whether): 0 or the job's error. */
static int etag_if_present(pc_job *j, const char *rel, pc_buf *etags, int *present)
{
    char path[4300];
    snprintf(path, sizeof(path), "%s/%s", j->out_dir, rel);
    *present = access(path, R_OK) == 0;
    json_t *tmp = NULL;
    int err = *present ? file_entry(j, rel, 0, &tmp, etags) : 0;
    json_decref(tmp);
    return err;
}

int pc_task_sign(pc_job *j)
{
    json_t *in = json_loads(j->inputs != NULL ? j->inputs : "", 0, NULL);
    json_t *pkg = pc_job_input(in, "package");
    if (pkg == NULL) {
        json_decref(in);
        return pc_job_fail(j, PC_EINTERNAL, 1, "internal_error", "the package result is missing");
    }
    char tkey[128] = "";
    if (j->env->tracker_url != NULL) {
        if (j->env->tracker_key_b64 != NULL)
            snprintf(tkey, sizeof(tkey), "%s", j->env->tracker_key_b64);
        else if (fetch_tracker_key(j, tkey, sizeof(tkey)) != 0) {
            json_decref(in);
            return j->err;
        }
    }
    int64_t ts = pc_json_int(pkg, "timescale", 90000);
    pc_buf etags;
    pc_buf_init(&etags, (size_t)16 << 20);
    json_t *renditions = json_array();
    json_t *all[16];
    size_t nall = 0;
    json_t *rj;
    size_t i;
    json_array_foreach(json_object_get(pkg, "renditions"), i, rj)
        if (nall < 16)
            all[nall++] = rj;
    json_t *aj = json_object_get(pkg, "audio");
    if (json_is_object(aj) && nall < 16)
        all[nall++] = aj;
    int err = 0;
    size_t total_files = 0, done_files = 0;
    for (size_t k = 0; k < nall; k++)
        total_files += json_array_size(json_object_get(all[k], "segments")) + 1;
    for (size_t k = 0; k < nall && err == 0; k++) {
        json_t *r = all[k];
        int audio = r == aj;
        const char *id = json_string_value(json_object_get(r, "id"));
        char rel[128];
        snprintf(rel, sizeof(rel), "%s/init.mp4", id);
        json_t *init = NULL;
        if ((err = file_entry(j, rel, 0, &init, &etags)) != 0)
            break;
        json_t *segs = json_array();
        json_t *sj;
        size_t s;
        json_array_foreach(json_object_get(r, "segments"), s, sj)
        {
            snprintf(rel, sizeof(rel), "%s/seg-%05zu.m4s", id, s + 1);
            json_t *e = NULL;
            double dur = (double)json_integer_value(json_array_get(sj, 0)) / (double)(audio ? 48000 : ts);
            if ((err = file_entry(j, rel, dur, &e, &etags)) != 0)
                break;
            json_array_append_new(segs, e);
            if (pc_job_canceled(j)) {
                err = pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
                break;
            }
            atomic_store(&j->progress, (int)(900 * ++done_files / (total_files ? total_files : 1)));
        }
        json_array_append_new(renditions,
                              json_pack("{s:s, s:s, s:O, s:O, s:i, s:i, s:o, s:o}", "id", id, "type", audio ? "audio" : "video",
                                        "bandwidth", json_object_get(r, "bandwidth"), "codecs", json_object_get(r, "codecs"),
                                        "width", audio ? 0 : (int)pc_json_int(r, "width", 0), "height",
                                        audio ? 0 : (int)pc_json_int(r, "height", 0), "init", init != NULL ? init : json_null(),
                                        "segments", segs));
    }
    /* the remaining published files only need ETags: the playlists (a rung's I-frame playlist when package
     * wrote one), the thumbnails */
    static const char *const extra[] = {"master.m3u8", "manifest.mpd", "thumbs/poster-16x9.webp", "thumbs/poster-2x3.webp",
                                        "thumbs/sprite.vtt"};
    int present = 1;
    for (size_t k = 0; err == 0 && k < sizeof(extra) / sizeof(extra[0]); k++)
        err = etag_if_present(j, extra[k], &etags, &present);
    for (size_t k = 0; k < nall && err == 0; k++) {
        char rel[64];
        const char *id = json_string_value(json_object_get(all[k], "id"));
        snprintf(rel, sizeof(rel), "%s/index.m3u8", id);
        json_t *tmp = NULL;
        if ((err = file_entry(j, rel, 0, &tmp, &etags)) == 0)
            json_decref(tmp);
        snprintf(rel, sizeof(rel), "%s/iframes.m3u8", id);
        if (err == 0)
            err = etag_if_present(j, rel, &etags, &present);
    }
    /* subtitle tracks: the whole file in p2p.json (the peer's local endpoint checks it), the rest ETags */
    json_t *subtitles = json_array(), *sj;
    size_t nseg = (size_t)pc_json_int(pkg, "segment_count", 0);
    json_array_foreach(json_object_get(pkg, "subtitles"), i, sj)
    {
        const char *id = json_string_value(json_object_get(sj, "id"));
        char rel[64];
        json_t *file = NULL;
        snprintf(rel, sizeof(rel), "%s/all.vtt", id != NULL ? id : "");
        if (err != 0 || id == NULL || (err = file_entry(j, rel, 0, &file, &etags)) != 0)
            break;
        /* a file past the peers' limit would make them refuse the whole manifest (subtitles.c keeps under it) */
        if (pc_json_int(file, "size", 0) <= (json_int_t)PC_MANIFEST_MAX_SUBTITLE_BYTES)
            json_array_append_new(subtitles, json_pack("{s:s, s:O, s:O, s:O}", "id", id, "language",
                                                       json_object_get(sj, "language"), "name", json_object_get(sj, "name"),
                                                       "file", file));
        json_decref(file);
        snprintf(rel, sizeof(rel), "%s/index.m3u8", id);
        err = etag_if_present(j, rel, &etags, &present);
        for (size_t s = 0; err == 0 && s < nseg; s++) {
            snprintf(rel, sizeof(rel), "%s/seg-%05zu.vtt", id, s + 1);
            err = etag_if_present(j, rel, &etags, &present);
        }
    }
    for (int s = 0, more = 1; err == 0 && more && s < 1000; s++) { /* the sheets, up to the first missing */
        char rel[64];
        snprintf(rel, sizeof(rel), "thumbs/sprite-%d.webp", s);
        err = etag_if_present(j, rel, &etags, &more);
    }
    if (err != 0) {
        json_decref(subtitles);
        json_decref(renditions);
        json_decref(in);
        pc_buf_clear(&etags);
        return j->err;
    }
    json_t *doc = json_pack("{s:i, s:s, s:O, s:O, s:o}", "version", 1, "video", j->video_id, "duration",
                            json_object_get(pkg, "duration"), "segment_duration", json_object_get(pkg, "segment_duration"),
                            "renditions", renditions);
    if (json_array_size(subtitles) > 0)
        json_object_set(doc, "subtitles", subtitles);
    json_decref(subtitles);
    if (tkey[0] != '\0')
        json_object_set_new(doc, "tracker", json_pack("{s:s, s:s}", "url", j->env->tracker_url, "ed25519", tkey));
    /* compact, and durations to 9 significant digits (a nanosecond of a segment; jansson's default of 17
     * wrote 4.0039999999999996): about 130 bytes a segment a rendition, so that the longest video at the
     * shortest segments (6 h at 2 s, 6 rungs and audio) stays within what peers accept */
    char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(doc);
    json_decref(in);
    if (text == NULL) {
        pc_buf_clear(&etags);
        return pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
    }
    size_t tlen = strlen(text);
    if (tlen > PC_MANIFEST_MAX_BYTES) { /* peers would refuse it, and the video could not be played through them */
        free(text);
        pc_buf_clear(&etags);
        return pc_job_fail(j, PC_ETOOBIG, 1, "media_limit", "the P2P manifest would be %zu bytes, over the %u that peers "
                           "accept (longer segments, --segment-seconds, make it smaller)", tlen, PC_MANIFEST_MAX_BYTES);
    }
    uint8_t sig[PC_ED25519_SIG_LEN];
    pc_ed25519_sign(j->env->origin_sk, text, tlen, sig);
    char sigb64[128];
    size_t slen = pc_b64_encode(sig, sizeof(sig), sigb64, 0);
    char path[4300];
    snprintf(path, sizeof(path), "%s/p2p.json", j->out_dir);
    int r = pc_write_file(path, text, tlen);
    snprintf(path, sizeof(path), "%s/p2p.json.sig", j->out_dir);
    if (r == 0)
        r = pc_write_file(path, sigb64, slen);
    uint8_t h[PC_B2_LEN];
    char hex[2 * PC_B2_LEN + 1];
    pc_blake2b256(text, tlen, h);
    pc_hex(h, sizeof(h), hex);
    if (r == 0)
        r = pc_buf_printf(&etags, "p2p.json %.16s\n", hex);
    pc_blake2b256(sigb64, slen, h);
    pc_hex(h, sizeof(h), hex);
    if (r == 0)
        r = pc_buf_printf(&etags, "p2p.json.sig %.16s\n", hex);
    snprintf(path, sizeof(path), "%s/.etags", j->out_dir);
    if (r == 0)
        r = pc_write_file(path, etags.data, etags.len);
    free(text);
    pc_buf_clear(&etags);
    if (r != 0)
        return pc_job_fail(j, r, 0, "io_error", "cannot write the signed manifest");
    j->result = strdup("{\"signed\":true}");
    atomic_store(&j->progress, 1000);
    return 0;
}

/* The temporary files in |dir| and its subdirectories (a rung's, the audio's, the thumbnails'): what a
 * write of an origin killed between writing and renaming left. Nothing writes there by the time of
 * publish (every task before it is done), so every such name goes, whichever pid it has. */
static void sweep_out(const char *dir)
{
    pc_sweep_tmp_names(dir, NULL, PC_SWEEP_ANY_PID);
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char sub[4400];
        struct stat st;
        if (e->d_name[0] == '.' || snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name) >= (int)sizeof(sub) ||
            lstat(sub, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        pc_sweep_tmp_names(sub, NULL, PC_SWEEP_ANY_PID);
    }
    closedir(d);
}

/* The worker's part of a revision's publish: its copy (|j|->out_dir, marked with its number) is made
 * ready to be swapped in, which the loop does (pc_media_swap_in, with the media caches: j->swap). A run
 * cut short after the swap finds there a directory without the revision's mark, the replaced
 * publication: it is removed, and the publication is the revision's already. */
static int prepare_swap(pc_job *j)
{
    char mark[4400];
    snprintf(mark, sizeof(mark), "%s/%s", j->out_dir, PC_STAGED_MARK);
    char *text = NULL;
    size_t len = 0;
    struct stat st;
    int ours = pc_read_file(mark, 64, &text, &len) == 0 && atoi(text) == j->arg;
    free(text);
    if (ours) {
        sweep_out(j->out_dir);
        j->swap = 1;
        return 0;
    }
    if (stat(j->out_dir, &st) == 0 && pc_rmtree(j->out_dir) != 0)
        return pc_job_fail(j, PC_EIO, 0, "io_error", "cannot remove the replaced publication");
    if (stat(j->media_dir, &st) != 0)
        return pc_job_fail(j, PC_ENOENT, 0, "io_error", "nothing to publish");
    snprintf(mark, sizeof(mark), "%s/%s", j->media_dir, PC_STAGED_MARK);
    if (unlink(mark) != 0 && errno != ENOENT)
        PC_LOGW("publish", "cannot remove %s", mark);
    return 0;
}

int pc_task_publish(pc_job *j)
{
    json_t *in = json_loads(j->inputs != NULL ? j->inputs : "", 0, NULL);
    /* publish depends on sign and thumbs; the description comes from package, via the work dir's p2p.json */
    struct stat st;
    if (pc_job_canceled(j)) {
        json_decref(in);
        return pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
    }
    if (pc_job_is_revision(j)) {
        if (prepare_swap(j) != 0) {
            json_decref(in);
            return j->err;
        }
    } else if (stat(j->out_dir, &st) == 0) {
        sweep_out(j->out_dir);
        if (stat(j->media_dir, &st) == 0 && pc_rmtree(j->media_dir) != 0) {
            json_decref(in);
            return pc_job_fail(j, PC_EIO, 0, "io_error", "cannot replace the previous publication");
        }
        if (rename(j->out_dir, j->media_dir) != 0) {
            json_decref(in);
            return pc_job_fail(j, pc_err_from_errno(errno), 0, "io_error", "cannot publish: %s", strerror(errno));
        }
        /* durable before the database says ready: a power cut must not leave a ready video without its media */
        if (pc_fsync_parent(j->media_dir) != 0) {
            json_decref(in);
            return pc_job_fail(j, PC_EIO, 0, "io_error", "cannot publish: %s", strerror(errno));
        }
    } else if (stat(j->media_dir, &st) != 0) {
        json_decref(in);
        return pc_job_fail(j, PC_ENOENT, 0, "io_error", "nothing to publish");
    }
    json_decref(in);
    char path[4300];
    snprintf(path, sizeof(path), "%s/.description.json", j->swap ? j->out_dir : j->media_dir);
    char *text = NULL;
    size_t len = 0;
    int r = pc_read_file(path, PC_MANIFEST_MAX_BYTES, &text, &len);
    if (r != 0)
        return pc_job_fail(j, r, 0, "io_error", "cannot read the published description");
    j->result = text;
    /* the scratch files (frame index, captured thumbnails) are no longer needed (a swap's: the loop
     * trashes them with the publication it replaces) */
    if (!j->swap && pc_rmtree(j->work_dir) != 0)
        PC_LOGW("publish", "cannot remove %s", j->work_dir);
    atomic_store(&j->progress, 1000);
    return 0;
}
