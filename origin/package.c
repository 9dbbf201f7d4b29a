/*
 * package: joins the chunk results into per-rung tracks. It checks that
 * every chunk's encoder produced the same parameter sets (so one init
 * segment serves all of them) and that every rung has the same segment
 * timing, then writes init segments, HLS media playlists and the master
 * playlist (BANDWIDTH = peak segment bit rate, AVERAGE-BANDWIDTH, CODECS,
 * RESOLUTION, FRAME-RATE; audio as an EXT-X-MEDIA group; an I-frame playlist
 * per rung for trick play) and a static DASH MPD with SegmentTemplate +
 * SegmentTimeline.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "av_util.h"
#include "cmaf.h"
#include "job.h"
#include "pc_buf.h"
#include "pc_json.h"
#include "pc_log.h"

struct seg {
    int64_t t, d, size;
    int64_t iframe; /* bytes from the start through the IDR (video; 0: not known) */
};

struct track {
    const char *id;
    int width, height;
    char codecs[32];
    const char *avcc_b64;
    struct seg *segs;
    int n;
    double peak, avg; /* bits per second */
    double iframe_peak, iframe_avg; /* of the I-frame playlist; 0 without one */
};

static int load_segments(json_t *arr, struct seg **out, int *n)
{
    size_t k = json_array_size(arr);
    *out = calloc(k > 0 ? k : 1, sizeof(struct seg));
    if (*out == NULL)
        return PC_ENOMEM;
    for (size_t i = 0; i < k; i++) {
        json_t *e = json_array_get(arr, i);
        (*out)[i].t = json_integer_value(json_array_get(e, 1));
        (*out)[i].d = json_integer_value(json_array_get(e, 2));
        (*out)[i].size = json_integer_value(json_array_get(e, 3));
    }
    *n = (int)k;
    return 0;
}

/* EXT-X-TARGETDURATION: the longest segment, rounded to the nearest second (RFC 8216 4.3.3.1) */
static int target_duration(const struct seg *s, int n, int64_t timescale, const int64_t *vdur)
{
    long maxd = 1;
    for (int i = 0; i < n; i++) {
        long d = lround((double)(vdur != NULL ? vdur[i] : s[i].d) / (double)timescale);
        if (d > maxd)
            maxd = d;
    }
    return (int)maxd;
}

/* Peak and average bit rate of |t|'s segments, each lasting |dur|[i] (NULL: its own duration; audio
 * takes the video's, its EXTINFs) in |timescale|; |iframes|: of their I-frame ranges (0 and 0 when one
 * is not known, as for chunks encoded before the figure was recorded, or does not fit in its segment).
 * The peak is RFC 8216's peak segment bit rate (4.1): the highest of any run of consecutive segments
 * lasting 0.5 to 1.5 target durations (the whole, for a video shorter than any such run). Before
 * 2026-11-24 it was the highest single segment, so a short last segment, mostly its IDR frame, set
 * BANDWIDTH up to 4 times too high, and players that rank variants by it chose rungs below the link. */
static void seg_rates(const struct track *t, int64_t timescale, int iframes, const int64_t *dur, double *peak, double *avg)
{
    double bits = 0, secs = 0;
    *peak = *avg = 0;
    for (int i = 0; i < t->n; i++) {
        const struct seg *s = &t->segs[i];
        if (iframes && (s->iframe <= 0 || s->iframe > s->size))
            return;
        bits += (double)(iframes ? s->iframe : s->size) * 8;
        secs += (double)(dur != NULL ? dur[i] : s->d) / (double)timescale;
    }
    *avg = secs > 0 ? bits / secs : 0;
    double target = target_duration(t->segs, t->n, timescale, dur), top = 0;
    int found = 0;
    for (int i = 0; i < t->n; i++) {
        double b = 0, d = 0;
        for (int k = i; k < t->n; k++) {
            b += (double)(iframes ? t->segs[k].iframe : t->segs[k].size) * 8;
            d += (double)(dur != NULL ? dur[k] : t->segs[k].d) / (double)timescale;
            if (d > 1.5 * target)
                break;
            if (d >= 0.5 * target && d > 0) {
                found = 1;
                top = b / d > top ? b / d : top;
            }
        }
    }
    *peak = found ? top : *avg;
}

static int media_playlist(pc_buf *b, const struct seg *s, int n, int64_t timescale, const int64_t *vdur)
{
    int r = pc_buf_printf(b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:%d\n#EXT-X-PLAYLIST-TYPE:VOD\n"
                             "#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init.mp4\"\n",
                          target_duration(s, n, timescale, vdur));
    for (int i = 0; r == 0 && i < n; i++)
        r = pc_buf_printf(b, "#EXTINF:%.6f,\nseg-%05d.m4s\n", (double)(vdur != NULL ? vdur[i] : s[i].d) / (double)timescale,
                          i + 1);
    if (r == 0)
        r = pc_buf_append_str(b, "#EXT-X-ENDLIST\n");
    return r;
}

/* Trick play (RFC 8216 4.3.3.6; Apple's authoring spec asks for it): each segment's IDR, the first
 * sample of its one fragment, as a byte range from the segment's start, so it carries the moof. */
static int iframe_playlist(pc_buf *b, const struct seg *s, int n, int64_t timescale)
{
    int r = pc_buf_printf(b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:%d\n#EXT-X-PLAYLIST-TYPE:VOD\n"
                             "#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-I-FRAMES-ONLY\n#EXT-X-MAP:URI=\"init.mp4\"\n",
                          target_duration(s, n, timescale, NULL));
    for (int i = 0; r == 0 && i < n; i++)
        r = pc_buf_printf(b, "#EXTINF:%.6f,\n#EXT-X-BYTERANGE:%" PRId64 "@0\nseg-%05d.m4s\n",
                          (double)s[i].d / (double)timescale, s[i].iframe, i + 1);
    if (r == 0)
        r = pc_buf_append_str(b, "#EXT-X-ENDLIST\n");
    return r;
}

static int timeline(pc_buf *b, const struct seg *s, int n)
{
    int r = pc_buf_append_str(b, "        <SegmentTimeline>\n");
    for (int i = 0; r == 0 && i < n;) {
        int k = i;
        while (k + 1 < n && s[k + 1].d == s[i].d && s[k + 1].t == s[k].t + s[k].d)
            k++;
        if (i == 0 || s[i].t != s[i - 1].t + s[i - 1].d)
            r = pc_buf_printf(b, "          <S t=\"%" PRId64 "\" d=\"%" PRId64 "\"", s[i].t, s[i].d);
        else
            r = pc_buf_printf(b, "          <S d=\"%" PRId64 "\"", s[i].d);
        if (r == 0)
            r = k > i ? pc_buf_printf(b, " r=\"%d\"/>\n", k - i) : pc_buf_append_str(b, "/>\n");
        i = k + 1;
    }
    if (r == 0)
        r = pc_buf_append_str(b, "        </SegmentTimeline>\n");
    return r;
}

/* A [num, den] rate as the MPD writes it: "25", "30000/1001". */
static void rate_string(const json_t *fr, char *out, size_t len)
{
    json_int_t fn = json_integer_value(json_array_get(fr, 0)), fd = json_integer_value(json_array_get(fr, 1));
    if (fd == 1)
        snprintf(out, len, "%" JSON_INTEGER_FORMAT, fn);
    else
        snprintf(out, len, "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT, fn, fd);
}

static void iso_duration(double secs, char *out, size_t len)
{
    snprintf(out, len, "PT%.3fS", secs);
}

int pc_task_package(pc_job *j)
{
    json_t *plan = json_loads(j->plan != NULL ? j->plan : "", 0, NULL);
    json_t *in = json_loads(j->inputs != NULL ? j->inputs : "", 0, NULL);
    struct track *tracks = NULL, audio;
    int64_t *adur = NULL; /* audio's segment durations as its EXTINFs: the video's */
    memset(&audio, 0, sizeof(audio));
    pc_buf b;
    pc_buf_init(&b, (size_t)16 << 20);
    json_t *res = NULL;
    int nt = 0;
    if (plan == NULL || in == NULL) {
        pc_job_fail(j, PC_EINTERNAL, 1, "internal_error", "package inputs are missing");
        goto out;
    }
    int64_t ts = pc_json_int(plan, "timescale", 90000);
    json_t *rungs = json_object_get(plan, "rungs"), *chunks = json_object_get(plan, "chunks");
    size_t nchunks = json_array_size(chunks);
    int total_segs = (int)json_array_size(json_object_get(plan, "segments"));
    nt = (int)json_array_size(rungs);
    tracks = calloc((size_t)nt, sizeof(*tracks));
    if (tracks == NULL) {
        pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
        goto out;
    }
    for (int i = 0; i < nt; i++) {
        struct track *t = &tracks[i];
        json_t *rj = json_array_get(rungs, (size_t)i);
        t->id = json_string_value(json_object_get(rj, "id"));
        t->width = (int)pc_json_int(rj, "width", 0);
        t->height = (int)pc_json_int(rj, "height", 0);
        t->segs = calloc((size_t)total_segs + 1, sizeof(struct seg));
        if (t->segs == NULL) {
            pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
            goto out;
        }
        for (size_t c = 0; c < nchunks; c++) {
            char key[32];
            snprintf(key, sizeof(key), "encode:%zu", c);
            json_t *cr = json_object_get(json_object_get(json_object_get(in, key), "rungs"), t->id);
            if (cr == NULL) {
                pc_job_fail(j, PC_EINTERNAL, 0, "internal_error", "chunk %zu of rung %s is missing", c, t->id);
                goto out;
            }
            const char *avcc = json_string_value(json_object_get(cr, "avcc"));
            if (t->avcc_b64 == NULL) {
                t->avcc_b64 = avcc;
                snprintf(t->codecs, sizeof(t->codecs), "%s", json_string_value(json_object_get(cr, "codecs")));
            } else if (avcc == NULL || strcmp(avcc, t->avcc_b64) != 0) {
                pc_job_fail(j, PC_EENCODE, 1, "encode_failed",
                            "chunk %zu of rung %s has different parameter sets; init segments would differ", c, t->id);
                goto out;
            }
            json_t *e;
            size_t k;
            json_array_foreach(json_object_get(cr, "segments"), k, e)
            {
                int num = (int)json_integer_value(json_array_get(e, 0));
                if (num != t->n + 1 || t->n >= total_segs) {
                    pc_job_fail(j, PC_EINTERNAL, 0, "internal_error", "rung %s segments are not contiguous", t->id);
                    goto out;
                }
                t->segs[t->n].t = json_integer_value(json_array_get(e, 1));
                t->segs[t->n].d = json_integer_value(json_array_get(e, 2));
                t->segs[t->n].size = json_integer_value(json_array_get(e, 3));
                t->segs[t->n].iframe = json_integer_value(json_array_get(e, 4)); /* 0 when absent */
                t->n++;
            }
        }
        if (t->n != total_segs) {
            pc_job_fail(j, PC_EINTERNAL, 0, "internal_error", "rung %s has %d of %d segments", t->id, t->n, total_segs);
            goto out;
        }
        for (int s = 0; i > 0 && s < t->n; s++)
            if (t->segs[s].t != tracks[0].segs[s].t || t->segs[s].d != tracks[0].segs[s].d) {
                pc_job_fail(j, PC_EENCODE, 1, "encode_failed", "rung %s segment %d is not aligned with rung %s", t->id, s + 1,
                            tracks[0].id);
                goto out;
            }
        seg_rates(t, ts, 0, NULL, &t->peak, &t->avg);
        seg_rates(t, ts, 1, NULL, &t->iframe_peak, &t->iframe_avg);
    }
    /* audio */
    json_t *aj = pc_job_input(in, "audio");
    int has_audio = aj != NULL && json_is_object(aj);
    if (has_audio) {
        audio.id = "a";
        if (load_segments(json_object_get(aj, "segments"), &audio.segs, &audio.n) != 0 || audio.n != total_segs) {
            pc_job_fail(j, PC_EINTERNAL, 0, "internal_error", "audio has %d of %d segments", audio.n, total_segs);
            goto out;
        }
        /* EXTINF of audio segment s = video segment s (aligned within one AAC frame) */
        adur = malloc((size_t)audio.n * sizeof(int64_t));
        if (adur == NULL) {
            pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
            goto out;
        }
        for (int s = 0; s < audio.n; s++)
            adur[s] = av_rescale(tracks[0].segs[s].d, 48000, ts);
        seg_rates(&audio, 48000, 0, adur, &audio.peak, &audio.avg);
    }
    /* init segments */
    for (int i = 0; i < nt + has_audio; i++) {
        int is_audio = i == nt;
        struct track *t = is_audio ? &audio : &tracks[i];
        uint8_t cfg[4096];
        size_t cfglen = 0;
        const char *b64 = is_audio ? json_string_value(json_object_get(aj, "asc")) : t->avcc_b64;
        if (b64 == NULL || pc_b64_decode(b64, strlen(b64), cfg, sizeof(cfg), &cfglen, 0) != 0) {
            pc_job_fail(j, PC_EINTERNAL, 0, "internal_error", "bad decoder configuration for %s", t->id);
            goto out;
        }
        pc_cmaf_track tr = {
            .video = !is_audio,
            .timescale = is_audio ? 48000 : (uint32_t)ts,
            .width = (uint16_t)t->width,
            .height = (uint16_t)t->height,
            .channels = 2,
            .sample_rate = 48000,
            .priming = is_audio ? (uint32_t)pc_json_int(aj, "priming", 0) : 0,
            .config = cfg,
            .config_len = cfglen,
            .max_bitrate = (uint32_t)t->peak,
            .avg_bitrate = (uint32_t)t->avg,
            .buffer_size = 0,
        };
        pc_buf_reset(&b);
        char rel[64];
        snprintf(rel, sizeof(rel), "%s/init.mp4", t->id);
        if (pc_cmaf_write_init(&b, &tr) != 0 || pc_job_write_kept(j, rel, &b) != 0) {
            if (j->err == 0)
                pc_job_fail(j, PC_EINTERNAL, 0, "internal_error", "cannot build the init segment of %s", t->id);
            goto out;
        }
        pc_buf_reset(&b);
        snprintf(rel, sizeof(rel), "%s/index.m3u8", t->id);
        int r = media_playlist(&b, t->segs, t->n, is_audio ? 48000 : ts, is_audio ? adur : NULL);
        if (r != 0 || pc_job_write(j, rel, &b) != 0) {
            if (j->err == 0)
                pc_job_fail(j, r, 0, "internal_error", "cannot write %s", rel);
            goto out;
        }
        if (!is_audio && t->iframe_peak > 0) {
            pc_buf_reset(&b);
            snprintf(rel, sizeof(rel), "%s/iframes.m3u8", t->id);
            if ((r = iframe_playlist(&b, t->segs, t->n, ts)) != 0 || pc_job_write(j, rel, &b) != 0) {
                if (j->err == 0)
                    pc_job_fail(j, r, 0, "internal_error", "cannot write %s", rel);
                goto out;
            }
        }
    }
    /* subtitle tracks (subtitles.c wrote their files) */
    json_t *subs = json_object_get(pc_job_input(in, "subtitles"), "tracks");
    size_t nsubs = json_array_size(subs);
    /* master playlist */
    /* FRAME-RATE is the variant's highest rate (RFC 8216 4.3.4.2): a variable-rate source's base rate, not its
     * average (plans from before it was recorded: the average) */
    json_t *fr = json_object_get(plan, "frame_rate"), *mfr = json_object_get(plan, "max_frame_rate");
    if (!json_is_array(mfr) || json_integer_value(json_array_get(mfr, 1)) <= 0)
        mfr = fr;
    double fps = (double)json_integer_value(json_array_get(mfr, 0)) / (double)json_integer_value(json_array_get(mfr, 1));
    pc_buf_reset(&b);
    int r = pc_buf_append_str(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    if (r == 0 && has_audio)
        r = pc_buf_append_str(&b, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"Default\",DEFAULT=YES,AUTOSELECT=YES,"
                                  "CHANNELS=\"2\",URI=\"a/index.m3u8\"\n");
    for (size_t k = 0; r == 0 && k < nsubs; k++) {
        json_t *st = json_array_get(subs, k);
        const char *lang = json_string_value(json_object_get(st, "language"));
        char la[48] = "";
        if (lang != NULL && lang[0] != '\0')
            snprintf(la, sizeof(la), "LANGUAGE=\"%s\",", lang);
        /* FORCED=YES only with AUTOSELECT=YES (RFC 8216 4.3.4.1) */
        r = pc_buf_printf(&b,
                          "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"%s\",%sDEFAULT=%s,AUTOSELECT=YES,FORCED=%s,"
                          "URI=\"%s/index.m3u8\"\n",
                          json_string_value(json_object_get(st, "name")), la,
                          json_is_true(json_object_get(st, "default")) ? "YES" : "NO",
                          json_is_true(json_object_get(st, "forced")) ? "YES" : "NO", json_string_value(json_object_get(st, "id")));
    }
    for (int i = 0; r == 0 && i < nt; i++) {
        struct track *t = &tracks[i];
        r = pc_buf_printf(&b,
                          "#EXT-X-STREAM-INF:BANDWIDTH=%.0f,AVERAGE-BANDWIDTH=%.0f,CODECS=\"%s%s\",RESOLUTION=%dx%d,"
                          "FRAME-RATE=%.3f%s%s,CLOSED-CAPTIONS=NONE\n%s/index.m3u8\n",
                          ceil(t->peak + (has_audio ? audio.peak : 0)), ceil(t->avg + (has_audio ? audio.avg : 0)), t->codecs,
                          has_audio ? ",mp4a.40.2" : "", t->width, t->height, fps, has_audio ? ",AUDIO=\"aac\"" : "",
                          nsubs > 0 ? ",SUBTITLES=\"subs\"" : "", t->id);
    }
    for (int i = 0; r == 0 && i < nt; i++)
        if (tracks[i].iframe_peak > 0)
            r = pc_buf_printf(&b,
                              "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=%.0f,AVERAGE-BANDWIDTH=%.0f,CODECS=\"%s\",RESOLUTION=%dx%d,"
                              "URI=\"%s/iframes.m3u8\"\n",
                              ceil(tracks[i].iframe_peak), ceil(tracks[i].iframe_avg), tracks[i].codecs, tracks[i].width,
                              tracks[i].height, tracks[i].id);
    if (r != 0 || pc_job_write(j, "master.m3u8", &b) != 0) {
        if (j->err == 0)
            pc_job_fail(j, r, 0, "internal_error", "cannot write the master playlist");
        goto out;
    }
    /* DASH */
    double duration = pc_json_num(plan, "duration", 0);
    char dur[32], minbuf[32];
    iso_duration(duration, dur, sizeof(dur));
    iso_duration(pc_json_num(plan, "segment_duration", 4), minbuf, sizeof(minbuf));
    int maxw = 0, maxh = 0;
    for (int i = 0; i < nt; i++) {
        if (tracks[i].width > maxw)
            maxw = tracks[i].width;
        if (tracks[i].height > maxh)
            maxh = tracks[i].height;
    }
    /* @frameRate is the average (ISO 23009-1 allows it for a varying rate), maxFrameRate the highest */
    char frs[32], mfrs[32];
    rate_string(fr, frs, sizeof(frs));
    rate_string(mfr, mfrs, sizeof(mfrs));
    pc_buf_reset(&b);
    r = pc_buf_printf(&b,
                      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                      "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" "
                      "profiles=\"urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019\" type=\"static\" "
                      "mediaPresentationDuration=\"%s\" minBufferTime=\"%s\">\n"
                      "  <Period id=\"0\" start=\"PT0S\">\n"
                      "    <AdaptationSet id=\"0\" contentType=\"video\" mimeType=\"video/mp4\" segmentAlignment=\"true\" "
                      "startWithSAP=\"1\" maxWidth=\"%d\" maxHeight=\"%d\" maxFrameRate=\"%s\">\n"
                      "      <SegmentTemplate timescale=\"%" PRId64 "\" initialization=\"$RepresentationID$/init.mp4\" "
                      "media=\"$RepresentationID$/seg-$Number%%05d$.m4s\" startNumber=\"1\">\n",
                      dur, minbuf, maxw, maxh, mfrs, ts);
    if (r == 0)
        r = timeline(&b, tracks[0].segs, tracks[0].n);
    if (r == 0)
        r = pc_buf_append_str(&b, "      </SegmentTemplate>\n");
    for (int i = 0; r == 0 && i < nt; i++)
        r = pc_buf_printf(&b,
                          "      <Representation id=\"%s\" bandwidth=\"%.0f\" codecs=\"%s\" width=\"%d\" height=\"%d\" "
                          "frameRate=\"%s\" sar=\"1:1\"/>\n",
                          tracks[i].id, ceil(tracks[i].peak), tracks[i].codecs, tracks[i].width, tracks[i].height, frs);
    if (r == 0)
        r = pc_buf_append_str(&b, "    </AdaptationSet>\n");
    if (r == 0 && has_audio) {
        /* The timeline in presentation time, as CMAF has it: the init segment's edit list already drops
         * the encoder's priming (players apply it: Chromium's MSE does), so the first segment presents
         * priming samples fewer than it holds and every later one starts that much earlier than its
         * decode time. A presentationTimeOffset of the priming on top made dash.js shift the audio a
         * second time: 21 ms early, its first real frame cut off at the period's start. */
        int64_t priming = pc_json_int(aj, "priming", 0);
        struct seg *pres = malloc((size_t)audio.n * sizeof(*pres));
        for (int s = 0; pres != NULL && s < audio.n; s++) {
            pres[s] = audio.segs[s];
            pres[s].t = audio.segs[s].t - priming > 0 ? audio.segs[s].t - priming : 0;
            pres[s].d = audio.segs[s].t + audio.segs[s].d - priming - pres[s].t;
            if (pres[s].d < 1) /* a first segment of priming alone: not from our encoder, but keep the MPD valid */
                pres[s].d = 1;
        }
        r = pres == NULL ? PC_ENOMEM
                         : pc_buf_append_str(&b,
                                             "    <AdaptationSet id=\"1\" contentType=\"audio\" mimeType=\"audio/mp4\" "
                                             "segmentAlignment=\"true\" startWithSAP=\"1\">\n"
                                             "      <SegmentTemplate timescale=\"48000\" initialization=\"$RepresentationID$/init.mp4\" "
                                             "media=\"$RepresentationID$/seg-$Number%05d$.m4s\" startNumber=\"1\">\n");
        if (r == 0)
            r = timeline(&b, pres, audio.n);
        free(pres);
        if (r == 0)
            r = pc_buf_printf(&b,
                              "      </SegmentTemplate>\n"
                              "      <Representation id=\"a\" bandwidth=\"%.0f\" codecs=\"mp4a.40.2\" audioSamplingRate=\"48000\">\n"
                              "        <AudioChannelConfiguration schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"2\"/>\n"
                              "      </Representation>\n"
                              "    </AdaptationSet>\n",
                              ceil(audio.peak));
    }
    /* subtitles: each track's whole WebVTT file (DASH-IF IOP 6.4.5, "sidecar" text) */
    for (size_t k = 0; r == 0 && k < nsubs; k++) {
        json_t *st = json_array_get(subs, k);
        const char *lang = json_string_value(json_object_get(st, "language")), *id = json_string_value(json_object_get(st, "id"));
        char la[48] = "";
        if (lang != NULL && lang[0] != '\0')
            snprintf(la, sizeof(la), " lang=\"%s\"", lang);
        r = pc_buf_printf(&b,
                          "    <AdaptationSet id=\"%zu\" contentType=\"text\" mimeType=\"text/vtt\"%s>\n"
                          "      <Role schemeIdUri=\"urn:mpeg:dash:role:2011\" value=\"%s\"/>\n"
                          "      <Label>%s</Label>\n"
                          "      <Representation id=\"%s\" bandwidth=\"%" JSON_INTEGER_FORMAT "\">\n"
                          "        <BaseURL>%s/all.vtt</BaseURL>\n"
                          "      </Representation>\n"
                          "    </AdaptationSet>\n",
                          2 + k, la, json_is_true(json_object_get(st, "forced")) ? "forced-subtitle" : "subtitle",
                          json_string_value(json_object_get(st, "name")), id, json_integer_value(json_object_get(st, "bandwidth")), id);
    }
    if (r == 0)
        r = pc_buf_append_str(&b, "  </Period>\n</MPD>\n");
    if (r != 0 || pc_job_write(j, "manifest.mpd", &b) != 0) {
        if (j->err == 0)
            pc_job_fail(j, r, 0, "internal_error", "cannot write the MPD");
        goto out;
    }
    /* result: what sign and the API need */
    size_t k;
    json_t *e;
    res = json_object();
    json_t *rs = json_array();
    for (int i = 0; i < nt; i++) {
        struct track *t = &tracks[i];
        json_t *segs = json_array();
        for (int s = 0; s < t->n; s++)
            json_array_append_new(segs, json_pack("[I,I]", (json_int_t)t->segs[s].d, (json_int_t)t->segs[s].size));
        json_array_append_new(rs, json_pack("{s:s, s:i, s:i, s:I, s:I, s:s, s:f, s:o}", "id", t->id, "width", t->width,
                                            "height", t->height, "bandwidth", (json_int_t)ceil(t->peak), "average_bandwidth",
                                            (json_int_t)ceil(t->avg), "codecs", t->codecs, "frame_rate", fps, "segments", segs));
    }
    json_object_set_new(res, "renditions", rs);
    if (has_audio) {
        json_t *segs = json_array();
        for (int s = 0; s < audio.n; s++)
            json_array_append_new(segs, json_pack("[I,I]", (json_int_t)av_rescale(tracks[0].segs[s].d, 48000, ts),
                                                  (json_int_t)audio.segs[s].size));
        json_object_set_new(res, "audio", json_pack("{s:s, s:I, s:I, s:s, s:i, s:i, s:o}", "id", "a", "bandwidth",
                                                    (json_int_t)ceil(audio.peak), "average_bandwidth", (json_int_t)ceil(audio.avg),
                                                    "codecs", "mp4a.40.2", "channels", 2, "sample_rate", 48000, "segments", segs));
    }
    if (nsubs > 0) {
        json_t *sl = json_array();
        json_array_foreach(subs, k, e)
        {
            json_array_append_new(sl, json_pack("{s:O, s:O, s:O, s:O, s:O, s:O}", "id", json_object_get(e, "id"), "language",
                                                json_object_get(e, "language"), "name", json_object_get(e, "name"), "default",
                                                json_object_get(e, "default"), "forced", json_object_get(e, "forced"), "cues",
                                                json_object_get(e, "cues")));
        }
        json_object_set_new(res, "subtitles", sl);
    }
    json_object_set_new(res, "timescale", json_integer(ts));
    json_object_set_new(res, "duration", json_real(duration));
    json_object_set_new(res, "segment_duration", json_real(pc_json_num(plan, "segment_duration", 4)));
    json_object_set_new(res, "segment_count", json_integer(total_segs));
    json_int_t concealed = 0; /* frames the decoder could not give, each shown as the one before it (encode.c) */
    for (size_t c = 0; c < nchunks; c++) {
        char key[32];
        snprintf(key, sizeof(key), "encode:%zu", c);
        concealed += json_integer_value(json_object_get(json_object_get(in, key), "concealed"));
    }
    json_object_set_new(res, "concealed_frames", json_integer(concealed));
    j->result = pc_json_dump(res);
    /* the API's description of the published video: the same without segment lists */
    json_t *desc = json_deep_copy(res);
    json_array_foreach(json_object_get(desc, "renditions"), k, e)
        json_object_del(e, "segments");
    json_object_del(json_object_get(desc, "audio"), "segments");
    json_object_del(desc, "timescale");
    char *dtext = pc_json_dump(desc);
    json_decref(desc);
    pc_buf_reset(&b);
    if (dtext == NULL || pc_buf_append_str(&b, dtext) != 0 || pc_job_write(j, ".description.json", &b) != 0) {
        free(dtext);
        if (j->err == 0)
            pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
        goto out;
    }
    free(dtext);
    atomic_store(&j->progress, 1000);
out:
    for (int i = 0; tracks != NULL && i < nt; i++)
        free(tracks[i].segs);
    free(tracks);
    free(audio.segs);
    free(adur);
    pc_buf_clear(&b);
    json_decref(res);
    json_decref(plan);
    json_decref(in);
    return j->err;
}
