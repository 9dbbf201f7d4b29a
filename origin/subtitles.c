/*
 * subtitles: the source's text subtitle streams (SubRip, ASS/SSA, mov_text, WebVTT, ...), each one a
 * WebVTT track beside the ladder: the whole track as one file (sK/all.vtt, what the DASH MPD names and
 * what a download wants) and cut at the video's segment boundaries for HLS (sK/seg-NNNNN.vtt and the
 * media playlist sK/index.m3u8, one subtitle segment per video segment, as Apple's authoring spec
 * asks). Cue text goes through libavcodec: the stream's decoder gives ASS events, FFmpeg's WebVTT
 * encoder turns their markup into WebVTT's (<i>, <b>, <u>; positions, colours and fonts are dropped).
 * Cue time 0 is the first video frame, as for audio. Bitmap subtitles (PGS, DVB, VobSub) would need
 * OCR and are left out, as are the streams of a source the probe had to copy (a joined recording).
 */
#include "subtitles.h"
#include "subs_text.h"

#include <inttypes.h>
#include <unistd.h>
#include <sys/stat.h>
#include <errno.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/dict.h>
#include <libavutil/mem.h>

#include "av_util.h"
#include "media.h"
#include "pc_buf.h"
#include "pc_fs.h"
#include "pc_json.h"
#include "pc_log.h"

#define CUES_MAX 200000      /* per track: a feature film has about 1500 */
#define TRACK_TEXT_MAX (8u << 20) /* bytes of cue text per track: with the timing lines of CUES_MAX cues,
                                   * all.vtt stays under PC_MANIFEST_MAX_SUBTITLE_BYTES (16 MiB) */
#define EVENT_MAX (16u << 10) /* bytes of one event's source (an ASS Dialogue line, a SubRip cue): FFmpeg's ASS
                               * decoder and WebVTT encoder take time quadratic in it (one 1 MB line of override
                               * tags: 16 s, on the event loop for an added file), and a cue keeps
                               * PC_SUBS_CUE_TEXT_MAX (4 KiB) of text at most; a longer event is left out */
#define OPEN_CUE_US 5000000  /* a cue that states no end shows until the next, for at most this */
#define TIME_LIMIT_US ((int64_t)1 << 53) /* cue times kept: ±285 years */

static int name_taken(const json_t *arr, const char *name)
{
    for (size_t k = 0; k < json_array_size(arr); k++)
        if (strcmp(json_string_value(json_object_get(json_array_get(arr, k), "name")), name) == 0)
            return 1;
    return 0;
}

/* A track's NAME from |title| (cleaned), else its language's name |lname|, else its tag |lg|, else
 * "Subtitles N"; unique among the entries of |arr|. |name| holds PC_SUBS_NAME_MAX + 8 bytes. */
static void track_name(const json_t *arr, const char *title, const char *lg, const char *lname, char *name, size_t nl)
{
    pc_subs_clean_name(title != NULL ? title : "", name, nl);
    if (name[0] == '\0') /* the language's name, else its tag */
        pc_subs_clean_name(lname[0] != '\0' ? lname : lg, name, nl);
    if (name[0] == '\0')
        snprintf(name, nl, "Subtitles %zu", json_array_size(arr) + 1);
    /* NAME is unique within the group (RFC 8216 4.3.4.1.1): "Name (2)", "Name (3)"... (at most
     * PC_SUBS_MAX names are taken, so one of the first PC_SUBS_MAX + 1 is free) */
    char base[PC_SUBS_NAME_MAX + 8];
    snprintf(base, sizeof(base), "%s", name);
    size_t cut = strlen(base) > PC_SUBS_NAME_MAX - 6 ? PC_SUBS_NAME_MAX - 6 : strlen(base);
    while (cut > 0 && ((unsigned char)base[cut] & 0xc0) == 0x80) /* between characters */
        cut--;
    for (int n = 2; name_taken(arr, name) && n <= PC_SUBS_MAX + 1; n++)
        snprintf(name, nl, "%.*s (%d)", (int)cut, base, n);
}

json_t *pc_subs_probe(const AVFormatContext *fmt)
{
    json_t *arr = json_array();
    int skipped = 0, have_default = 0;
    for (unsigned i = 0; arr != NULL && i < fmt->nb_streams; i++) {
        const AVStream *st = fmt->streams[i];
        if (st->codecpar->codec_type != AVMEDIA_TYPE_SUBTITLE)
            continue;
        const AVCodecDescriptor *d = avcodec_descriptor_get(st->codecpar->codec_id);
        if (d == NULL || !(d->props & AV_CODEC_PROP_TEXT_SUB) || avcodec_find_decoder(st->codecpar->codec_id) == NULL ||
            json_array_size(arr) >= PC_SUBS_MAX) {
            skipped++;
            continue;
        }
        const AVDictionaryEntry *lang = av_dict_get(st->metadata, "language", NULL, 0);
        const AVDictionaryEntry *title = av_dict_get(st->metadata, "title", NULL, 0);
        char lg[32], name[PC_SUBS_NAME_MAX + 8], lname[PC_SUBS_NAME_MAX + 1];
        pc_subs_clean_language(lang != NULL ? lang->value : NULL, lg, sizeof(lg), lname, sizeof(lname));
        track_name(arr, title != NULL ? title->value : "", lg, lname, name, sizeof(name));
        /* one DEFAULT=YES in the group at most (RFC 8216 4.3.4.1.1): Matroska marks every track default
         * unless told otherwise, so the first so marked */
        int dflt = (st->disposition & AV_DISPOSITION_DEFAULT) != 0 && !have_default;
        have_default |= dflt;
        json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:b, s:b}", "index", (int)i, "codec", d->name, "language", lg, "name",
                              name, "default", dflt, "forced", (st->disposition & AV_DISPOSITION_FORCED) != 0);
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            PC_LOGW("probe", "subtitle stream %u left out: out of memory", i);
            skipped++;
        }
    }
    if (skipped > 0)
        PC_LOGI("probe", "%d subtitle stream(s) left out (bitmap subtitles, no decoder, or more than %d)", skipped,
                PC_SUBS_MAX);
    return arr;
}

typedef struct cue {
    int64_t start, end; /* µs on the source's clock, then from the first video frame */
    uint32_t order;     /* arrival, for a stable sort */
    uint32_t len;       /* of text */
    int open;           /* no end stated */
    char *text;
} cue;

typedef struct track {
    AVCodecContext *dec, *enc;
    int index;
    cue *cues;
    size_t n, cap;
    size_t text; /* bytes of cue text kept */
    int dropped; /* cues past CUES_MAX or TRACK_TEXT_MAX */
    int sidecar; /* from a file added to the published video (its cues from the first frame) */
} track;

static int cue_cmp(const void *a, const void *b)
{
    const cue *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* One decoded event of track |t|, read from packet |p|. */
static int add_cue(track *t, const AVStream *st, const AVPacket *p, const AVSubtitle *sub, uint8_t *buf, int bufsize)
{
    int64_t pts = p->pts != AV_NOPTS_VALUE ? p->pts : p->dts;
    if (pts == AV_NOPTS_VALUE || sub->num_rects == 0)
        return 0;
    /* times far past any video (crafted, or av_rescale_q's INT64_MIN on overflow) are left out: what is
     * kept stays within ±2^53 µs, so the sums here and in settle() cannot overflow */
    int64_t at = av_rescale_q(pts, st->time_base, AV_TIME_BASE_Q);
    int64_t dur = p->duration > 0 ? av_rescale_q(p->duration, st->time_base, AV_TIME_BASE_Q) : 0;
    if (at < -TIME_LIMIT_US || at > TIME_LIMIT_US || dur < 0 || dur > TIME_LIMIT_US)
        return 0;
    for (unsigned i = 0; i < sub->num_rects; i++)
        if (sub->rects[i]->type != SUBTITLE_ASS || sub->rects[i]->ass == NULL)
            return 0;
    int len = avcodec_encode_subtitle(t->enc, buf, bufsize, sub);
    if (len <= 0)
        return 0; /* nothing to show (an empty event), or too long for the buffer: left out */
    if (t->n >= CUES_MAX) {
        t->dropped++;
        return 0;
    }
    char *text = pc_subs_vtt_text((const char *)buf, (size_t)len);
    if (text == NULL)
        return 0;
    if (t->text + strlen(text) > TRACK_TEXT_MAX) {
        free(text);
        t->dropped++;
        return 0;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        cue *c = realloc(t->cues, cap * sizeof(*c));
        if (c == NULL) {
            free(text);
            return PC_ENOMEM;
        }
        t->cues = c;
        t->cap = cap;
    }
    t->text += strlen(text);
    cue *c = &t->cues[t->n];
    *c = (cue){.start = at + (int64_t)sub->start_display_time * 1000, .order = (uint32_t)t->n,
               .len = (uint32_t)strlen(text), .text = text};
    if (sub->end_display_time > 0 && sub->end_display_time != UINT32_MAX)
        c->end = at + (int64_t)sub->end_display_time * 1000;
    else if (dur > 0)
        c->end = at + dur;
    else
        c->open = 1;
    t->n++;
    return 0;
}

/* "HH:MM:SS.mmm --> HH:MM:SS.mmm\nTEXT\n\n" */
static int vtt_cue(pc_buf *b, const cue *c)
{
    int64_t a = (c->start + 500) / 1000, z = (c->end + 500) / 1000; /* ms */
    return pc_buf_printf(b, "%02" PRId64 ":%02d:%02d.%03d --> %02" PRId64 ":%02d:%02d.%03d\n%s\n\n", a / 3600000,
                         (int)(a / 60000 % 60), (int)(a / 1000 % 60), (int)(a % 1000), z / 3600000, (int)(z / 60000 % 60),
                         (int)(z / 1000 % 60), (int)(z % 1000), c->text);
}

/* The cue times are the video's presentation times, which start at 0 (HLS: X-TIMESTAMP-MAP; the whole file
 * is a one-segment track too, as the peer's local endpoint lists it). */
#define HEAD "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n"
#define CUE_BYTES(c) (34 + (size_t)(c)->len) /* a cue in a file: timing line, text, blank line (hours < 100) */

/* The cues that overlap each segment in turn, in start order: a sweep over the cues sorted by start,
 * |act| (room for every cue) holding those that overlap the segment last swept to. */
typedef struct sweep {
    size_t next, nact;
    size_t *act;
} sweep;

static void sweep_to(const track *t, sweep *w, int64_t lo, int64_t hi)
{
    size_t kept = 0;
    for (size_t k = 0; k < w->nact; k++)
        if (t->cues[w->act[k]].end > lo)
            w->act[kept++] = w->act[k];
    w->nact = kept;
    for (; w->next < t->n && t->cues[w->next].start < hi; w->next++)
        if (t->cues[w->next].end > lo)
            w->act[w->nact++] = w->next;
}

/* Whether the segment files of |t| stay within |limit| bytes. A cue is in each segment it overlaps, so
 * cues that last the whole video would be written once per segment (a crafted track: 200 000 of them in
 * 1800 segments would be 25 GB). Stops counting at the limit. */
static int segments_fit(const track *t, const int64_t *seg_us, int nseg, size_t limit, size_t *act)
{
    sweep w = {.act = act};
    size_t total = 0;
    for (int s = 0; s < nseg; s++) {
        sweep_to(t, &w, seg_us[s], seg_us[s + 1]);
        total += sizeof(HEAD);
        for (size_t k = 0; k < w.nact && total <= limit; k++)
            total += CUE_BYTES(&t->cues[w.act[k]]);
        if (total > limit)
            return 0;
    }
    return 1;
}

/* The video's segment start times from the plan, in µs from its first frame's time base origin, and its end
 * as a last entry: |*nseg| + 1 entries, malloc'd; NULL without segments or memory. */
static int64_t *plan_segments(const json_t *plan, int *nseg)
{
    json_t *segs = json_object_get(plan, "segments");
    *nseg = (int)json_array_size(segs);
    int64_t *seg_us = *nseg > 0 ? calloc((size_t)*nseg + 1, sizeof(*seg_us)) : NULL;
    if (seg_us == NULL)
        return NULL;
    int64_t ts = pc_json_int(plan, "timescale", 90000);
    for (int i = 0; i < *nseg; i++)
        seg_us[i] = av_rescale(json_integer_value(json_array_get(json_array_get(segs, (size_t)i), 0)), 1000000, ts);
    seg_us[*nseg] = av_rescale(pc_json_int(plan, "end", 0), 1000000, ts);
    return seg_us;
}

/* Whether track |t|'s cues (settled) make HLS segments of at most 4 times the whole track: a real track's
 * cues are each in one or two segments; cues spanning much of the video would repeat in every one. */
static int track_fits(const track *t, const int64_t *seg_us, int nseg, size_t *act)
{
    size_t whole = sizeof(HEAD);
    for (size_t i = 0; i < t->n; i++)
        whole += CUE_BYTES(&t->cues[i]);
    return segments_fit(t, seg_us, nseg, 4 * whole + 256 * (size_t)nseg, act);
}

/* Writes track |k|'s files: all.vtt, a WebVTT segment per video segment, the HLS media playlist. |seg_us|
 * has |nseg| + 1 entries (the last, the video's end); |target| is the video's EXT-X-TARGETDURATION; |act|
 * has room for every cue. */
static int write_track(pc_job *j, int k, const track *t, const int64_t *seg_us, int nseg, int target, size_t *act,
                       json_t *out)
{
    char rel[64];
    snprintf(rel, sizeof(rel), "s%d", k);
    char dir[4400];
    snprintf(dir, sizeof(dir), "%s/%s", j->out_dir, rel);
    int r = pc_mkdirs(dir);
    if (r != 0)
        return pc_job_fail(j, r, 0, "io_error", "cannot create %s", dir);
    pc_buf b, pl;
    pc_buf_init(&b, (size_t)256 << 20);
    pc_buf_init(&pl, (size_t)16 << 20);
    r = pc_buf_append_str(&b, HEAD);
    for (size_t i = 0; r == 0 && i < t->n; i++)
        r = vtt_cue(&b, &t->cues[i]);
    snprintf(rel, sizeof(rel), "s%d/all.vtt", k);
    if (r == 0)
        r = pc_job_write_kept(j, rel, &b);
    size_t total = b.len;
    r = r == 0 ? pc_buf_printf(&pl, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:%d\n#EXT-X-PLAYLIST-TYPE:VOD\n", target) : r;
    /* a cue that spans a boundary is in every segment it overlaps (players drop the repeats) */
    sweep w = {.act = act};
    for (int s = 0; r == 0 && s < nseg; s++) {
        pc_buf_reset(&b);
        r = pc_buf_append_str(&b, HEAD);
        sweep_to(t, &w, seg_us[s], seg_us[s + 1]);
        for (size_t a = 0; r == 0 && a < w.nact; a++)
            r = vtt_cue(&b, &t->cues[w.act[a]]);
        snprintf(rel, sizeof(rel), "s%d/seg-%05d.vtt", k, s + 1);
        if (r == 0)
            r = pc_job_write_kept(j, rel, &b);
        if (r == 0)
            r = pc_buf_printf(&pl, "#EXTINF:%.6f,\nseg-%05d.vtt\n", (double)(seg_us[s + 1] - seg_us[s]) / 1e6, s + 1);
    }
    if (r == 0)
        r = pc_buf_append_str(&pl, "#EXT-X-ENDLIST\n");
    snprintf(rel, sizeof(rel), "s%d/index.m3u8", k);
    if (r == 0)
        r = pc_job_write(j, rel, &pl);
    if (r != 0 && j->err == 0)
        pc_job_fail(j, r, 0, "out_of_memory", "out of memory writing subtitle track %d", k);
    if (r == 0) {
        double secs = (double)seg_us[nseg] / 1e6;
        json_object_set_new(out, "cues", json_integer((json_int_t)t->n));
        json_object_set_new(out, "bandwidth", json_integer((json_int_t)(secs > 0 ? (double)total * 8 / secs + 1 : 1)));
    }
    pc_buf_clear(&b);
    pc_buf_clear(&pl);
    return r;
}

/* Times from the first video frame, ends settled, cues outside the video dropped; then sorted. */
static void settle(track *t, int64_t t0_us, int64_t end_us)
{
    if (t->n > 1) /* (none: no array) */
        qsort(t->cues, t->n, sizeof(*t->cues), cue_cmp);
    size_t w = 0;
    for (size_t i = 0; i < t->n; i++) {
        cue c = t->cues[i];
        if (c.open) {
            int64_t next = i + 1 < t->n ? t->cues[i + 1].start : c.start; /* none after it: the longest */
            c.end = next > c.start && next - c.start < OPEN_CUE_US ? next : c.start + OPEN_CUE_US;
        }
        c.start -= t0_us;
        c.end -= t0_us;
        if (c.start < 0)
            c.start = 0;
        if (c.end > end_us)
            c.end = end_us;
        if (c.end <= c.start) {
            free(c.text);
            continue;
        }
        t->cues[w++] = c;
    }
    t->n = w;
}

/* Track |t| decodes stream |st| (number |index| of its file) and encodes WebVTT: 0, or 0 with |t| left
 * out (index -1, logged), or an error the job records. */
static int open_track(pc_job *j, track *t, AVStream *st, int index)
{
    t->index = -1;
    if (st->codecpar->codec_type != AVMEDIA_TYPE_SUBTITLE)
        return 0;
    const AVCodec *vtt = avcodec_find_encoder(AV_CODEC_ID_WEBVTT);
    const AVCodec *dc = avcodec_find_decoder(st->codecpar->codec_id);
    t->dec = dc != NULL ? avcodec_alloc_context3(dc) : NULL;
    t->enc = vtt != NULL ? avcodec_alloc_context3(vtt) : NULL;
    if (t->dec == NULL || t->enc == NULL || avcodec_parameters_to_context(t->dec, st->codecpar) < 0)
        return 0;
    t->dec->pkt_timebase = st->time_base;
    if (avcodec_open2(t->dec, dc, NULL) < 0 || t->dec->subtitle_header == NULL) {
        PC_LOGW("subtitles", "video %s: subtitle stream %d cannot be decoded; left out", j->video_id, index);
        return 0;
    }
    /* the encoder reads the styles (bold, italic) from the decoder's ASS header */
    t->enc->subtitle_header = av_mallocz((size_t)t->dec->subtitle_header_size + 1);
    if (t->enc->subtitle_header == NULL)
        return pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
    memcpy(t->enc->subtitle_header, t->dec->subtitle_header, (size_t)t->dec->subtitle_header_size);
    t->enc->subtitle_header_size = t->dec->subtitle_header_size;
    t->enc->time_base = (AVRational){1, 1000};
    if (avcodec_open2(t->enc, vtt, NULL) < 0) {
        PC_LOGW("subtitles", "video %s: subtitle stream %d cannot be converted; left out", j->video_id, index);
        return 0;
    }
    st->discard = AVDISCARD_DEFAULT;
    t->index = index;
    return 0;
}

/* Every packet of |fmt| for the |nt| tracks |tr| (by stream index) decoded into cues. 0, or the error the
 * job records. */
static int read_track_packets(pc_job *j, AVFormatContext *fmt, track *tr, size_t nt)
{
    AVPacket *pkt = av_packet_alloc();
    const size_t bufsize = (size_t)1 << 20;
    uint8_t *buf = malloc(bufsize);
    int rc = pkt == NULL || buf == NULL ? pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory") : 0;
    int64_t size = fmt->pb != NULL ? avio_size(fmt->pb) : -1;
    for (uint64_t npk = 0; rc == 0; npk++) {
        if ((npk & 255) == 0 && pc_job_canceled(j)) {
            rc = pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
            break;
        }
        if (av_read_frame(fmt, pkt) < 0)
            break; /* the end, or damage past which nothing more is read: what was read is kept */
        for (size_t k = 0; rc == 0 && k < nt; k++) {
            track *t = &tr[k];
            if (t->index != pkt->stream_index)
                continue;
            if (pkt->size > (int)EVENT_MAX) {
                t->dropped++;
                continue;
            }
            AVSubtitle sub;
            int got = 0;
            if (avcodec_decode_subtitle2(t->dec, &sub, &got, pkt) >= 0 && got) {
                int e = add_cue(t, fmt->streams[t->index], pkt, &sub, buf, (int)bufsize);
                avsubtitle_free(&sub);
                if (e != 0)
                    rc = pc_job_fail(j, e, 0, "out_of_memory", "out of memory");
            }
        }
        if (size > 0 && pkt->pos > 0 && !tr[0].sidecar)
            atomic_store(&j->progress, (int)(pkt->pos * 900 / size));
        av_packet_unref(pkt);
    }
    free(buf);
    av_packet_free(&pkt);
    return rc;
}

static int first_text_stream(const AVFormatContext *fmt)
{
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        const AVCodecDescriptor *d = avcodec_descriptor_get(fmt->streams[i]->codecpar->codec_id);
        if (fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_SUBTITLE && d != NULL && (d->props & AV_CODEC_PROP_TEXT_SUB))
            return (int)i;
    }
    return -1;
}

int pc_subs_open_file(const char *path, AVFormatContext **out, pc_job *j)
{
    /* subtitle formats only, from this file only: a playlist or concat demuxer would open other files */
    AVDictionary *opt = NULL;
    av_dict_set(&opt, "format_whitelist", PC_SUBS_FILE_FORMATS, 0);
    av_dict_set(&opt, "protocol_whitelist", "file", 0);
    int r = pc_av_open_with(j, path, 0, &opt, out);
    av_dict_free(&opt);
    return r;
}

static void track_free(track *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->cues[i].text);
    free(t->cues);
    avcodec_free_context(&t->dec);
    avcodec_free_context(&t->enc);
    memset(t, 0, sizeof(*t));
}

json_t *pc_subs_added_entry(const json_t *subs, const char *path, const char *language, const char *title, int rev,
                            const json_t *plan, char *why, size_t whylen)
{
    AVFormatContext *fmt = NULL;
    char eb[128];
    int r = pc_subs_open_file(path, &fmt, NULL), si = r < 0 ? -1 : first_text_stream(fmt);
    if (r < 0 || si < 0) {
        snprintf(why, whylen, "not a SubRip, WebVTT or ASS/SSA file%s%s", r < 0 ? ": " : "",
                 r < 0 ? pc_av_err(r, eb, sizeof(eb)) : "");
        avformat_close_input(&fmt);
        return NULL;
    }
    /* at least one cue within the video survives the conversion the task makes (an ASS event whose text
     * converts to nothing, or a cue past the end, would leave an empty track) */
    pc_job jb;
    memset(&jb, 0, sizeof(jb));
    snprintf(jb.video_id, sizeof(jb.video_id), "(new file)");
    track t;
    memset(&t, 0, sizeof(t));
    t.sidecar = 1;
    int nseg = 0;
    int64_t *seg_us = plan_segments(plan, &nseg);
    if (seg_us != NULL && open_track(&jb, &t, fmt->streams[si], si) == 0 && t.index >= 0 &&
        read_track_packets(&jb, fmt, &t, 1) == 0)
        settle(&t, 0, seg_us[nseg]);
    const char *codec = avcodec_get_name(fmt->streams[si]->codecpar->codec_id);
    size_t cues = t.index >= 0 && jb.err == 0 ? t.n : 0;
    /* the task leaves out a track that does not fit its segments: refused here, or it would be accepted,
     * then left out with only a log line, its entry counting against the limits for good */
    size_t *act = cues > 0 ? malloc(cues * sizeof(*act)) : NULL;
    int fits = cues == 0 || (act != NULL && track_fits(&t, seg_us, nseg, act));
    free(act);
    free(seg_us);
    track_free(&t);
    avformat_close_input(&fmt);
    if (cues == 0) {
        snprintf(why, whylen, jb.err != 0 ? "it could not be read: %s" : "no cue in it could be read within the video",
                 jb.err_msg);
        return NULL;
    }
    if (!fits) {
        snprintf(why, whylen, "its cues overlap so that its HLS segments would be over 4 times the whole track (cues "
                              "that last much of the video)");
        return NULL;
    }
    char lg[32], name[PC_SUBS_NAME_MAX + 8], lname[PC_SUBS_NAME_MAX + 1];
    pc_subs_clean_language(language, lg, sizeof(lg), lname, sizeof(lname));
    track_name(subs, title, lg, lname, name, sizeof(name));
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:i}", "file", path, "codec", codec, "language", lg, "name", name,
                     "default", 0, "forced", 0, "added", rev);
}

/* The copy of the publication a revision works on, in the output directory: every file hard-linked
 * (nothing is copied; files are replaced by renames, so the published ones never change), but the
 * subtitle tracks, which the revision writes again, and the dot files sign writes. A copy left by a run
 * cut short is made again. */
/* 1 when the top-level name |n| is the directory of a subtitle track the revision does not keep (taken
 * out, or no entry of the plan's |subs|). */
static int track_dropped(const char *n, const json_t *subs)
{
    if (n[0] != 's' || n[1] < '0' || n[1] > '9' || strspn(n + 1, "0123456789") != strlen(n + 1) || strlen(n) > 6)
        return 0;
    const json_t *e = json_array_get(subs, (size_t)atoi(n + 1));
    return e == NULL || json_object_get(e, "removed") != NULL;
}

static int link_tree(pc_job *j, const char *from, const char *to, int top, const json_t *subs)
{
    if (mkdir(to, 0755) != 0 && errno != EEXIST)
        return pc_job_fail(j, pc_err_from_errno(errno), 0, "io_error", "cannot make %s: %s", to, strerror(errno));
    DIR *d = opendir(from);
    if (d == NULL)
        return pc_job_fail(j, pc_err_from_errno(errno), 0, "io_error", "cannot read %s: %s", from, strerror(errno));
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
        const char *n = e->d_name;
        if (n[0] == '.' || (top && track_dropped(n, subs)))
            continue;
        char a[4400], b[4400];
        struct stat st;
        if (snprintf(a, sizeof(a), "%s/%s", from, n) >= (int)sizeof(a) || snprintf(b, sizeof(b), "%s/%s", to, n) >= (int)sizeof(b) ||
            lstat(a, &st) != 0) {
            rc = pc_job_fail(j, PC_EIO, 0, "io_error", "cannot read %s", a);
        } else if (S_ISDIR(st.st_mode)) {
            rc = top ? link_tree(j, a, b, 0, NULL) : 0; /* two levels: rungs, audio, thumbnails, tracks */
        } else if (S_ISREG(st.st_mode) && link(a, b) != 0) {
            rc = pc_job_fail(j, pc_err_from_errno(errno), 0, "io_error", "cannot link %s: %s", b, strerror(errno));
        }
    }
    closedir(d);
    return rc;
}

static int stage(pc_job *j)
{
    struct stat st;
    if (stat(j->out_dir, &st) == 0 && pc_rmtree(j->out_dir) != 0)
        return pc_job_fail(j, PC_EIO, 0, "io_error", "cannot clear %s", j->out_dir);
    if (mkdir(j->work_dir, 0755) != 0 && errno != EEXIST)
        return pc_job_fail(j, pc_err_from_errno(errno), 0, "io_error", "cannot make %s: %s", j->work_dir, strerror(errno));
    json_t *plan = json_loads(j->plan != NULL ? j->plan : "", 0, NULL), *subs = json_object_get(plan, "subtitles");
    int rc = link_tree(j, j->media_dir, j->out_dir, 1, subs);
    json_decref(plan);
    /* publish swaps only a copy so marked (a directory left there without it is the publication a swap
     * replaced) */
    pc_buf mark;
    pc_buf_init(&mark, 64);
    char rel[32];
    snprintf(rel, sizeof(rel), "%s", PC_STAGED_MARK);
    if (rc == 0 && (pc_buf_printf(&mark, "%d\n", j->arg) != 0 || pc_job_write(j, rel, &mark) != 0))
        rc = j->err != 0 ? j->err : pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
    pc_buf_clear(&mark);
    return rc;
}

int pc_task_subtitles(pc_job *j)
{
    json_t *plan = json_loads(j->plan != NULL ? j->plan : "", 0, NULL);
    json_t *subs = json_object_get(plan, "subtitles");
    size_t nt = json_array_size(subs);
    track *tr = calloc(nt > 0 ? nt : 1, sizeof(*tr));
    int nseg = 0;
    int64_t *seg_us = plan_segments(plan, &nseg);
    AVFormatContext *fmt = NULL;
    json_t *res = json_object(), *out_tracks = json_array();
    char eb[128];
    if (plan == NULL || nt == 0 || nseg == 0) {
        pc_job_fail(j, PC_EINTERNAL, 1, "internal_error", "the plan has no subtitles");
        goto out;
    }
    if (tr == NULL || seg_us == NULL || res == NULL || out_tracks == NULL) {
        pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
        goto out;
    }
    /* EXT-X-TARGETDURATION as the video's: its longest segment, rounded */
    int target = 1;
    for (int i = 0; i < nseg; i++) {
        int d = (int)((seg_us[i + 1] - seg_us[i] + 500000) / 1000000);
        target = d > target ? d : target;
    }
    json_t *vtb = json_object_get(plan, "time_base");
    AVRational vtbq = {(int)json_integer_value(json_array_get(vtb, 0)), (int)json_integer_value(json_array_get(vtb, 1))};
    int64_t t0_us = vtbq.num > 0 && vtbq.den > 0 ? av_rescale_q(pc_json_int(plan, "first_pts", 0), vtbq, AV_TIME_BASE_Q) : 0;
    /* a revision (a file added to the published video) works on a copy of the publication */
    if (pc_job_is_revision(j) && stage(j) != 0)
        goto out;
    /* the source's own streams in one pass over it; then each added file on its own */
    int embedded = 0;
    for (size_t k = 0; k < nt; k++) {
        tr[k].index = -1;
        json_t *e = json_array_get(subs, k);
        embedded |= json_object_get(e, "file") == NULL && json_object_get(e, "removed") == NULL;
    }
    int r;
    if (embedded) {
        r = pc_av_open_source(j, plan, &fmt);
        if (r < 0) {
            pc_job_fail(j, PC_EIO, 0, "io_error", "cannot open the source (%s)", pc_av_err(r, eb, sizeof(eb)));
            goto out;
        }
        for (unsigned i = 0; i < fmt->nb_streams; i++)
            fmt->streams[i]->discard = AVDISCARD_ALL;
        for (size_t k = 0; k < nt; k++) {
            json_t *e = json_array_get(subs, k);
            int index = (int)pc_json_int(e, "index", -1);
            if (json_object_get(e, "file") != NULL || json_object_get(e, "removed") != NULL || index < 0 ||
                index >= (int)fmt->nb_streams)
                continue;
            if ((r = open_track(j, &tr[k], fmt->streams[index], index)) != 0)
                goto out;
        }
        if (read_track_packets(j, fmt, tr, nt) != 0)
            goto out;
        avformat_close_input(&fmt);
    }
    for (size_t k = 0; k < nt; k++) {
        const char *file = json_string_value(json_object_get(json_array_get(subs, k), "file"));
        if (file == NULL || json_object_get(json_array_get(subs, k), "removed") != NULL)
            continue;
        tr[k].sidecar = 1;
        int si = -1;
        if ((r = pc_subs_open_file(file, &fmt, j)) < 0 || (si = first_text_stream(fmt)) < 0) {
            PC_LOGW("subtitles", "video %s: the added file %s cannot be read (%s); left out", j->video_id, file,
                    r < 0 ? pc_av_err(r, eb, sizeof(eb)) : "no text subtitles in it");
            avformat_close_input(&fmt);
            continue;
        }
        if ((r = open_track(j, &tr[k], fmt->streams[si], si)) != 0 || read_track_packets(j, fmt, &tr[k], 1) != 0)
            goto out;
        avformat_close_input(&fmt);
    }
    for (size_t k = 0; k < nt; k++) {
        track *t = &tr[k];
        if (t->index < 0)
            continue;
        settle(t, t->sidecar ? 0 : t0_us, seg_us[nseg]); /* an added file's cues count from the first frame */
        size_t *act = malloc((t->n > 0 ? t->n : 1) * sizeof(*act));
        if (act == NULL) {
            pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
            goto out;
        }
        if (!track_fits(t, seg_us, nseg, act)) {
            PC_LOGW("subtitles", "video %s: subtitle stream %d left out: its cues overlap so that its HLS segments "
                    "would be over 4 times the track", j->video_id, t->index);
            free(act);
            continue;
        }
        if (t->dropped > 0)
            PC_LOGW("subtitles", "video %s: subtitle stream %d has over %d cues or %u MiB of text; %d cues left out",
                    j->video_id, t->index, CUES_MAX, TRACK_TEXT_MAX >> 20, t->dropped);
        json_t *in = json_array_get(subs, k);
        char id[24];
        /* sK, K the plan's entry: a track keeps its id and URLs through revisions (its files are cached
         * as immutable, and a player that loaded the master before a track was taken out must not get
         * another language under the same URL); ids of tracks left out or taken out are not reused */
        snprintf(id, sizeof(id), "s%zu", k);
        /* entry: the plan's, for taking the track out again (pipeline.c) */
        json_t *o = json_pack("{s:s, s:O, s:O, s:O, s:O, s:I}", "id", id, "language", json_object_get(in, "language"), "name",
                              json_object_get(in, "name"), "default", json_object_get(in, "default"), "forced",
                              json_object_get(in, "forced"), "entry", (json_int_t)k);
        int wr = write_track(j, (int)k, t, seg_us, nseg, target, act, o);
        free(act);
        if (wr != 0) {
            json_decref(o);
            goto out;
        }
        json_array_append_new(out_tracks, o);
    }
    json_object_set(res, "tracks", out_tracks);
    j->result = pc_json_dump(res);
    atomic_store(&j->progress, 1000);
    PC_LOGI("subtitles", "video %s: %zu subtitle track(s)", j->video_id, json_array_size(out_tracks));
out:
    for (size_t k = 0; tr != NULL && k < nt; k++)
        track_free(&tr[k]);
    free(tr);
    free(seg_us);
    avformat_close_input(&fmt);
    json_decref(out_tracks);
    json_decref(res);
    json_decref(plan);
    return j->err;
}
