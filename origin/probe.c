/*
 * probe: validates the upload and describes it. It demuxes every packet
 * (cheap: no decoding) to learn each video frame's timestamp, decodes the
 * first frames to prove the stream is decodable, and checks the stated
 * limits. Bad input fails the video permanently with a stable code
 * (not_media, no_video_stream, undecodable, media_limit); the upload stays.
 *
 * plan: turns the probe into a ladder, an output timeline, segments and
 * encode chunks (pure logic in ladder.c).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <libavutil/pixdesc.h>

#include "av_util.h"
#include "subtitles.h"
#include "job.h"
#include "ladder.h"
#include "pc_json.h"
#include "pc_log.h"
#include "stitch.h"

#define MAX_DIM 8192
#define MAX_FRAMES 1000000 /* about 9 hours at 30 fps */
#define MAX_DURATION (6 * 3600.0)
#define DECODE_CHECK_PACKETS 120
#define RETIME_THREADS 2 /* the decode that orders frames whose timestamps are decode order */

/* A video's colour as H.273 code points (AVColor* values; 2 = unspecified): transfer, primaries, matrix. */
struct colour {
    int trc, pri, spc;
};
#define COLOUR_STREAMS 64
#define COLOUR_UNKNOWN ((struct colour){2, 2, 2}) /* unspecified in all three H.273 tables */


/* Rates such as 2997/100 tidied into 30000/1001, 25.0004 into 25. */
static AVRational tidy_rate(AVRational fr)
{
    if (fabs(av_q2d(fr) - 30000.0 / 1001) < 0.005)
        return (AVRational){30000, 1001};
    if (fabs(av_q2d(fr) - 24000.0 / 1001) < 0.005)
        return (AVRational){24000, 1001};
    if (fabs(av_q2d(fr) - 60000.0 / 1001) < 0.005)
        return (AVRational){60000, 1001};
    if (fabs(av_q2d(fr) - lround(av_q2d(fr))) < 0.002)
        return (AVRational){(int)lround(av_q2d(fr)), 1};
    return fr;
}
static int specified(int v)
{
    return v != 0 && v != 2; /* transfer and primaries: 0 is reserved, 2 unspecified */
}

static struct colour colour_of_par(const AVCodecParameters *p)
{
    return (struct colour){(int)p->color_trc, (int)p->color_primaries, (int)p->color_space};
}

static struct colour colour_of_frame(const AVFrame *f)
{
    return (struct colour){(int)f->color_trc, (int)f->color_primaries, (int)f->colorspace};
}

/* Fields of |c| still unspecified take |from|'s. */
static void colour_fill(struct colour *c, struct colour from)
{
    c->trc = specified(c->trc) ? c->trc : specified(from.trc) ? from.trc : 2;
    c->pri = specified(c->pri) ? c->pri : specified(from.pri) ? from.pri : 2;
    c->spc = c->spc != 2 ? c->spc : from.spc; /* matrix 0 is RGB, a real value */
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts |a| and drops repeated values; returns how many remain. */
static size_t sort_unique(int64_t *a, size_t n)
{
    qsort(a, n, sizeof(*a), cmp_i64);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || a[i] != a[m - 1])
            a[m++] = a[i];
    return m;
}

/* Appends |v| to the growing array |*a|. Returns 0 or PC_ENOMEM. */
static int push_i64(int64_t **a, size_t *n, size_t *cap, int64_t v)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 1024;
        int64_t *na = realloc(*a, nc * sizeof(*na));
        if (na == NULL)
            return PC_ENOMEM;
        *a = na;
        *cap = nc;
    }
    (*a)[(*n)++] = v;
    return 0;
}

/* Frame order for a file whose timestamps are decode order: decodes every video frame once (the
 * container's discard marks ignored) and pairs the k-th frame out of the decoder, named by its own
 * packet's time, with the k-th of the sorted times |grid| (n of them). A decoder that starts at an
 * open GOP or mid-GOP drops the first pictures, which come first in display order: up to
 * |max_missing| frames fewer than n pair with the last ones of |grid|. |*map| gets *nmap (packet
 * time, presentation time) pairs sorted by packet time. Returns 1 when the map must be used (frames
 * move, frames are missing, or no packet had a pts: the decoder's own guess lags by its delay), 0
 * when the order was right (no map), or fails the job and returns -1. */
static int retime_scan(pc_job *j, const char *src, int vidx, int fmt_flags, const int64_t *grid, size_t n, size_t max_missing, int no_pts,
                       int64_t **map, size_t *nmap)
{
    char eb[128];
    AVFormatContext *fmt = NULL;
    AVCodecContext *dec = NULL;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *frame = av_frame_alloc();
    int64_t *pairs = malloc(2 * n * sizeof(*pairs));
    size_t k = 0;
    int r = -1, eof = 0, moved = 0;
    if (pkt == NULL || frame == NULL || pairs == NULL) {
        pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
        goto out;
    }
    int e = pc_av_open(j, src, fmt_flags, &fmt);
    if (e >= 0)
        e = avformat_find_stream_info(fmt, NULL);
    if (e >= 0 && (vidx >= (int)fmt->nb_streams || (e = pc_av_open_decoder(fmt, vidx, RETIME_THREADS, &dec)) < 0))
        e = e < 0 ? e : AVERROR_STREAM_NOT_FOUND;
    if (e < 0) {
        if (pc_job_canceled(j))
            pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
        else
            pc_job_fail(j, PC_EIO, 0, "io_error", "cannot reopen the source (%s)", pc_av_err(e, eb, sizeof(eb)));
        goto out;
    }
    for (int drained = 0; !drained;) {
        if (pc_job_canceled(j)) {
            pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
            goto out;
        }
        pc_feed feed = {.mode = PC_FEED_DECODE_ORDER};
        pc_av_feed(fmt, dec, vidx, pkt, &eof, &feed);
        while (!drained && (e = avcodec_receive_frame(dec, frame)) != AVERROR(EAGAIN)) {
            if (e < 0) {
                drained = 1;
                break;
            }
            int64_t t = frame->pts;
            av_frame_unref(frame);
            if (k == n || t == AV_NOPTS_VALUE) {
                pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable",
                            "the timestamps are in decode order and the decoder's frames do not match the packets");
                goto out;
            }
            pairs[2 * k++] = t;
            if ((k & 255) == 0)
                atomic_store(&j->progress, (int)(900 + 100 * k / n));
        }
    }
    if (eof == PC_FEED_READ_ERROR) {
        pc_job_fail(j, PC_EIO, 0, "io_error", "cannot read the source");
        goto out;
    }
    if (k == 0 || n - k > max_missing) {
        pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable",
                    "the timestamps are in decode order and only %zu of the %zu frames decode, so they cannot be put in order", k, n);
        goto out;
    }
    for (size_t i = 0; i < k; i++) {
        pairs[2 * i + 1] = grid[n - k + i];
        moved |= pairs[2 * i] != pairs[2 * i + 1];
    }
    qsort(pairs, k, 2 * sizeof(*pairs), cmp_i64);
    for (size_t i = 1; i < k; i++)
        if (pairs[2 * i] == pairs[2 * i - 2]) {
            pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable", "the timestamps are in decode order and not unique");
            goto out;
        }
    r = moved || k < n || no_pts;
    if (r) {
        *map = pairs;
        *nmap = k;
        pairs = NULL;
    }
out:
    free(pairs);
    av_frame_free(&frame);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
    if (fmt != NULL)
        avformat_close_input(&fmt);
    return r;
}

/* An upload the pipeline reads through a copy in the work directory (stitch.h): what probe_source
 * found that asks for one, then what the copy is. */
enum { REMAKE_STITCH = 1, REMAKE_TIMED };
struct remake {
    int kind;           /* REMAKE_*: a recording whose clock jumps; video packets without any timestamp */
    int vidx, aidx;     /* the streams to copy (aidx -1: none) */
    int fmt_flags;      /* how to read the upload */
    AVRational fps;     /* REMAKE_TIMED: the rate to time the frames at */
    const char *format; /* the upload's container (libavformat's static name) */
    int64_t size;       /* the upload's size */
    /* once made */
    const char *name;     /* the copy's file name in the work directory */
    int parts;            /* REMAKE_STITCH: parts joined; their audio begins at joins (µs) */
    const int64_t *joins;
    size_t njoins;
};

/* Probes |src|: the upload (|*rm| zeroed), or its copy (|rm->name| set). Returns 0 or the job's error,
 * or 1 with |*rm| filled when |src| is the upload and needs a copy. */
static int probe_source(pc_job *j, const char *src, struct remake *rm)
{
    char eb[128];
    struct stat st;
    if (stat(src, &st) != 0)
        return errno == ENOENT || errno == ENOTDIR
                   ? pc_job_fail(j, PC_ENOENT, 1, "source_missing", "the original upload is missing")
                   : pc_job_fail(j, PC_EIO, 0, "io_error", "cannot read the original upload (%s)", strerror(errno));
    if (st.st_size == 0)
        return pc_job_fail(j, PC_ENOTMEDIA, 1, "not_media", "the upload is empty (0 bytes)");
    AVFormatContext *fmt = NULL;
    AVCodecContext *dec = NULL;
    AVPacket *pkt = NULL;
    AVFrame *frame = NULL;
    /* pts: every video packet's time; shown: those a player shows (see the loop); keys: keyframes' */
    int64_t *pts = NULL, *keys = NULL, *shown = NULL, *map = NULL;
    size_t nkeys = 0, keycap = 0, nshown = 0, shcap = 0, nmap = 0;
    int r = pc_av_open(j, src, 0, &fmt), genpts = 0, remake = 0;
    if (r < 0) {
        if (pc_job_canceled(j))
            return pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
        /* out of descriptors or memory, an I/O error: the machine's state, tried again (before, such an
         * upload failed for good as not media; found by review with 48 descriptors) */
        if (pc_av_err_transient(r))
            return pc_job_fail(j, PC_EIO, 0, "io_error", "cannot open the upload (%s)", pc_av_err(r, eb, sizeof(eb)));
        return pc_job_fail(j, PC_ENOTMEDIA, 1, "not_media", "FFmpeg does not recognise the file as media (%s)",
                           pc_av_err(r, eb, sizeof(eb)));
    }
    /* the container's colour (an MP4 colr box, a Matroska Colour element): stream probing copies the
     * decoder's over it, and HEVC and AV1 decoders reset theirs when the bitstream has none */
    struct colour box[COLOUR_STREAMS];
    for (unsigned i = 0; i < COLOUR_STREAMS; i++)
        box[i] = i < fmt->nb_streams ? colour_of_par(fmt->streams[i]->codecpar) : COLOUR_UNKNOWN;
    if ((r = avformat_find_stream_info(fmt, NULL)) < 0) {
        pc_job_fail(j, PC_ENOTMEDIA, 1, "not_media", "cannot read the file's streams (%s)", pc_av_err(r, eb, sizeof(eb)));
        goto out;
    }
    int vidx = pc_av_video_stream(fmt);
    if (vidx < 0) {
        pc_job_fail(j, PC_ENOVIDEO, 1, "no_video_stream", "the file (%s) has no video stream", fmt->iformat->name);
        goto out;
    }
    AVStream *vs = fmt->streams[vidx];
    const AVCodecParameters *vp = vs->codecpar;
    if (vp->width <= 0 || vp->height <= 0 || vp->width > MAX_DIM || vp->height > MAX_DIM) {
        pc_job_fail(j, PC_EMEDIALIMIT, 1, "media_limit", "video size %dx%d is outside 1..%d pixels", vp->width, vp->height,
                    MAX_DIM);
        goto out;
    }
    if ((r = pc_av_open_decoder(fmt, vidx, 1, &dec)) < 0) {
        pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable", "no usable decoder for %s video (%s)",
                    avcodec_get_name(vp->codec_id), pc_av_err(r, eb, sizeof(eb)));
        goto out;
    }
    int aidx = av_find_best_stream(fmt, AVMEDIA_TYPE_AUDIO, -1, vidx, NULL, 0);
    int audio_ok = 0, audio_later = 0; /* a stream without parameters: its audio may start in a later part */
    for (unsigned i = 0; aidx < 0 && (fmt->iformat->flags & AVFMT_TS_DISCONT) && i < fmt->nb_streams; i++)
        if (fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO && fmt->streams[i]->codecpar->codec_id != AV_CODEC_ID_NONE)
            aidx = (int)i; /* av_find_best_stream passes over those */
    if (aidx >= 0) {
        AVCodecContext *adec = NULL;
        if (pc_av_open_decoder(fmt, aidx, 1, &adec) == 0) {
            audio_ok = fmt->streams[aidx]->codecpar->ch_layout.nb_channels > 0;
            audio_later = !audio_ok && (fmt->iformat->flags & AVFMT_TS_DISCONT);
        }
        if (!audio_ok && !audio_later)
            PC_LOGW("probe", "video %s: audio stream %d cannot be decoded; publishing without audio", j->video_id, aidx);
        avcodec_free_context(&adec);
    }
    pkt = av_packet_alloc();
    frame = av_frame_alloc();
    size_t cap = 0, n = 0;
    if (pkt == NULL || frame == NULL) {
        pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
        goto out;
    }
    int64_t keyframes = 0, decoded = 0, sent = 0, last_pos = 0, same_stamps = 0, no_pts = 0;
    int64_t first_key = AV_NOPTS_VALUE; /* the time of the first keyframe in decode order */
    int64_t last_dts = AV_NOPTS_VALUE, jump_at = AV_NOPTS_VALUE; /* where the dts first jumped (stitch.h) */
    size_t pre_key = 0, pre_key_shown = 0, gop1_end = SIZE_MAX; /* counts before it; shown index at the second */
    struct colour first = COLOUR_UNKNOWN; /* the first decoded frame's */
    int decode_error = 0;
    char decode_msg[128] = "";
    /* the last video packet read: where its bytes end in the file, and what it was counted as */
    int64_t lastv_end = -1, lastv_dts = AV_NOPTS_VALUE;
    int lastv_shown = 0, lastv_key = 0, lastv_size = 0, lastv_same = 0, lastv_nopts = 0, lastv_prekey = 0;
demux:
    for (;;) {
        r = av_read_frame(fmt, pkt);
        if (r == AVERROR_EOF)
            break;
        if (r < 0) {
            if (pc_job_canceled(j)) {
                pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
                goto out;
            }
            PC_LOGW("probe", "video %s: read error after %zu frames (%s); using what was read", j->video_id, n,
                    pc_av_err(r, eb, sizeof(eb)));
            break;
        }
        if (pkt->stream_index == vidx) {
            int64_t t = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
            if (t == AV_NOPTS_VALUE) {
                av_packet_unref(pkt);
                if (n == 0 && rm->name == NULL) {
                    /* a raw H.264 or HEVC elementary stream: no times at all. Copied into MP4 with
                     * its frames timed at the stream's rate (ffmpeg's 25 fps when it states none)
                     * in decode order, it is a file whose times are decode order (below). */
                    AVRational fr = vs->r_frame_rate.num > 0 && vs->r_frame_rate.den > 0 ? vs->r_frame_rate : vs->avg_frame_rate;
                    if (fr.num <= 0 || fr.den <= 0 || av_q2d(fr) > 240 || av_q2d(fr) < 0.1)
                        fr = (AVRational){25, 1};
                    PC_LOGW("probe", "video %s: the video packets carry no timestamps; timing the frames at %d/%d fps",
                            j->video_id, fr.num, fr.den);
                    *rm = (struct remake){.kind = REMAKE_TIMED, .vidx = vidx, .aidx = -1, .fmt_flags = genpts, .fps = fr,
                                          .format = fmt->iformat->name, .size = (int64_t)st.st_size};
                    remake = 1;
                    goto out;
                }
                pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable", "video packets carry no timestamps");
                goto out;
            }
            if (n == MAX_FRAMES) {
                av_packet_unref(pkt);
                pc_job_fail(j, PC_EMEDIALIMIT, 1, "media_limit", "the video has more than %d frames", MAX_FRAMES);
                goto out;
            }
            /* decode times never go back, except where recordings were joined (an MPEG-TS or -PS
             * timestamp discontinuity): the frames' times then repeat, which no timeline can order,
             * or leap ahead. Such a file is stitched (stitch.h). (An MP4 with several edits re-reads
             * a hidden lead-in: those packets are flagged.) */
            if (pkt->dts != AV_NOPTS_VALUE && (fmt->iformat->flags & AVFMT_TS_DISCONT) &&
                !(pkt->flags & AV_PKT_FLAG_DISCARD)) {
                if (last_dts != AV_NOPTS_VALUE && jump_at == AV_NOPTS_VALUE) {
                    int64_t last = av_rescale_q(last_dts, vs->time_base, AV_TIME_BASE_Q);
                    if (pc_stitch_jump(last, last, av_rescale_q(pkt->dts, vs->time_base, AV_TIME_BASE_Q)))
                        jump_at = last_dts;
                }
                last_dts = pkt->dts;
            }
            int grew = push_i64(&pts, &n, &cap, t);
            same_stamps += pkt->pts == AV_NOPTS_VALUE || pkt->pts == pkt->dts; /* AVI: dts only */
            no_pts += pkt->pts == AV_NOPTS_VALUE;
            if (pkt->flags & AV_PKT_FLAG_KEY) {
                if (first_key == AV_NOPTS_VALUE)
                    first_key = t;
                else if (gop1_end == SIZE_MAX)
                    gop1_end = nshown;
            }
            pre_key += first_key == AV_NOPTS_VALUE;
            /* a frame before the start (or after the end) of an MP4 edit list is decoded, never shown:
             * it is told by its flag, not its time (another edit may show a frame at the same time) */
            if (grew == 0 && !(pkt->flags & AV_PKT_FLAG_DISCARD)) {
                pre_key_shown += first_key == AV_NOPTS_VALUE;
                grew = push_i64(&shown, &nshown, &shcap, t);
            }
            if (grew == 0 && (pkt->flags & AV_PKT_FLAG_KEY)) {
                keyframes++;
                grew = push_i64(&keys, &nkeys, &keycap, t);
            }
            if (grew != 0) {
                av_packet_unref(pkt);
                pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
                goto out;
            }
            lastv_end = pkt->pos >= 0 ? pkt->pos + pkt->size : -1;
            lastv_dts = pkt->dts;
            lastv_size = pkt->size;
            /* what it added to the counts below the arrays (undone with it: a file in decode order whose last
             * frame was left out was no longer seen as one, since same_stamps no longer equalled n; found
             * by review) */
            lastv_same = pkt->pts == AV_NOPTS_VALUE || pkt->pts == pkt->dts;
            lastv_nopts = pkt->pts == AV_NOPTS_VALUE;
            lastv_prekey = first_key == AV_NOPTS_VALUE;
            lastv_shown = !(pkt->flags & AV_PKT_FLAG_DISCARD);
            lastv_key = (pkt->flags & AV_PKT_FLAG_KEY) != 0;
            if (sent < DECODE_CHECK_PACKETS && decoded == 0) {
                sent++;
                pkt->flags &= ~AV_PKT_FLAG_DISCARD; /* a long hidden lead-in still proves the stream decodes */
                if (avcodec_send_packet(dec, pkt) < 0)
                    decode_error++;
                while (avcodec_receive_frame(dec, frame) == 0) {
                    if (decoded++ == 0)
                        first = colour_of_frame(frame);
                    av_frame_unref(frame);
                }
            }
        }
        if (pkt->pos > 0)
            last_pos = pkt->pos;
        av_packet_unref(pkt);
        if ((n & 255) == 0) {
            atomic_store(&j->progress, (int)(900.0 * (double)last_pos / (double)st.st_size));
            if (pc_job_canceled(j)) {
                pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
                goto out;
            }
        }
    }
    /* a file cut short (an interrupted copy) whose index says more than it holds: the last frame's bytes
     * run to the cut, shorter than the index entry of that frame, so it is part of a frame, which no
     * decoder makes a picture of. Counted, it was a frame concealed (one more than the source shows) or,
     * in a last chunk of a few frames, the one too many that failed the video as undecodable (found by
     * review). */
    if (lastv_end == (int64_t)st.st_size && lastv_dts != AV_NOPTS_VALUE && n > 0 && (!lastv_key || nkeys > 1)) {
        const AVIndexEntry *ie = avformat_index_get_entry_from_timestamp(vs, lastv_dts, AVSEEK_FLAG_ANY);
        if (ie != NULL && ie->timestamp == lastv_dts && ie->size > lastv_size) {
            PC_LOGW("probe", "video %s: the file is cut short: its last frame has %d of its %d bytes; left out",
                    j->video_id, lastv_size, ie->size);
            n--;
            nshown -= lastv_shown;
            same_stamps -= lastv_same;
            no_pts -= lastv_nopts;
            pre_key -= lastv_prekey;
            pre_key_shown -= (size_t)(lastv_prekey && lastv_shown);
            if (lastv_key) {
                nkeys--;
                keyframes--;
            }
        }
    }
    if (decoded == 0) {
        avcodec_send_packet(dec, NULL);
        while (avcodec_receive_frame(dec, frame) == 0) {
            if (decoded++ == 0)
                first = colour_of_frame(frame);
            av_frame_unref(frame);
        }
    }
    if (no_pts > 0 && no_pts < (int64_t)n && !genpts) {
        /* some packets lack a pts (MPEG-PS and -TS need one only every 0.7 s): their dts is not their
         * presentation time. Read again with libavformat generating the missing ones from the packets
         * after them; the other tasks open the source the same way. (A container without any pts,
         * H.264 in AVI, is left alone: generated times would be wrong for B-frames; see retime_scan.) */
        PC_LOGI("probe", "video %s: %" PRId64 " of %zu video packets lack a pts; reading with generated ones", j->video_id,
                no_pts, n);
        avformat_close_input(&fmt);
        genpts = AVFMT_FLAG_GENPTS;
        if ((r = pc_av_open(j, src, genpts, &fmt)) < 0 || (r = avformat_find_stream_info(fmt, NULL)) < 0 ||
            (unsigned)vidx >= fmt->nb_streams) {
            if (pc_job_canceled(j))
                pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
            else
                pc_job_fail(j, PC_EIO, 0, "io_error", "cannot reopen the source (%s)",
                            r < 0 ? pc_av_err(r, eb, sizeof(eb)) : "the video stream is gone");
            goto out;
        }
        vs = fmt->streams[vidx];
        vp = vs->codecpar;
        n = nkeys = nshown = pre_key = pre_key_shown = 0;
        gop1_end = SIZE_MAX;
        first_key = last_dts = jump_at = AV_NOPTS_VALUE;
        keyframes = last_pos = same_stamps = no_pts = 0;
        goto demux;
    }
    if (jump_at != AV_NOPTS_VALUE) {
        PC_LOGW("probe", "video %s: the timestamps jump after %.1f s (recordings joined with a discontinuity); stitching",
                j->video_id, (double)(jump_at - (n > 0 ? pts[0] : 0)) * av_q2d(vs->time_base));
        if (rm->name == NULL) {
            *rm = (struct remake){.kind = REMAKE_STITCH, .vidx = vidx, .aidx = audio_ok || audio_later ? aidx : -1, .fmt_flags = genpts,
                                  .format = fmt->iformat->name, .size = (int64_t)st.st_size};
            remake = 1;
            goto out;
        }
        pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable",
                    "the timestamps jump after %.1f s (recordings joined with a discontinuity) and stitching did not help",
                    (double)(jump_at - (n > 0 ? pts[0] : 0)) * av_q2d(vs->time_base));
        goto out;
    }
    if (audio_later)
        PC_LOGW("probe", "video %s: audio stream %d states no parameters; publishing without audio", j->video_id, aidx);
    if (n == 0 || decoded == 0) {
        snprintf(decode_msg, sizeof(decode_msg), "%s", n == 0 ? "the video stream holds no frames" : "no frame of the video stream could be decoded");
        pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable", "%s (%s, %d decode errors)", decode_msg,
                    avcodec_get_name(vp->codec_id), decode_error);
        goto out;
    }
    size_t m = sort_unique(pts, n); /* the distinct times */
    int retime = 0;
    /* every pts equal to its dts (or absent, as in AVI) while the decoder reorders: the file's times
     * are the decode order's (an elementary stream remuxed without timestamps; B-frames in AVI), so
     * the frames are put in order by decoding them all once; an edit list computed from those times
     * is ignored */
    if (same_stamps == (int64_t)n && m == n && n > 1 && dec->has_b_frames > 0) {
        size_t max_missing = pre_key + (size_t)dec->has_b_frames + 2;
        if ((r = retime_scan(j, src, vidx, genpts, pts, n, max_missing, no_pts == (int64_t)n, &map, &nmap)) < 0)
            goto out;
        retime = r;
        if (retime) {
            PC_LOGW("probe", "video %s: the timestamps are in decode order; %zu frames ordered by decoding", j->video_id, nmap);
            memmove(pts, pts + (n - nmap), nmap * sizeof(*pts)); /* the frames that decode: the last times */
            n = nmap;
        }
    }
    if (!retime) {
        /* the frames a player shows: not hidden by an edit list; when the stream has keyframes, none
         * before the first (decoders drop them) and none of its GOP shown before it (an open GOP's
         * leading pictures, whose references are missing) */
        m = 0;
        for (size_t i = 0; i < nshown; i++) {
            int lead = first_key != AV_NOPTS_VALUE && (i < pre_key_shown || (i < gop1_end && shown[i] < first_key));
            if (!lead)
                shown[m++] = shown[i];
        }
        if (m == 0) {
            pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable", "none of the video's %zu frames is shown (edit list, no keyframe)", n);
            goto out;
        }
        if (m != n)
            PC_LOGI("probe", "video %s: %zu of %zu frames are not shown (outside the edit list, or before the first keyframe)",
                    j->video_id, n - m, n);
        n = sort_unique(shown, m);
        if (n != m)
            PC_LOGW("probe", "video %s: %zu frames share a timestamp with another", j->video_id, m - n);
        int64_t *tmp = pts;
        pts = shown;
        shown = tmp;
    }

    AVRational fr = vs->avg_frame_rate;
    if (fr.num <= 0 || fr.den <= 0)
        fr = vs->r_frame_rate;
    double span = (double)(pts[n - 1] - pts[0]) * av_q2d(vs->time_base);
    if (fr.num <= 0 || fr.den <= 0 || av_q2d(fr) > 240 || av_q2d(fr) < 0.1) {
        double est = n > 1 && span > 0 ? (n - 1) / span : 25;
        fr = av_d2q(est, 1001000);
    }
    fr = tidy_rate(fr);
    pc_timeline tl;
    pc_timeline_init(&tl, 1, pts[0], vs->time_base.num, vs->time_base.den, fr.num, fr.den);
    int cfr = 1;
    for (size_t i = 0; i < n && cfr; i++)
        if (pc_timeline_map(&tl, pts[i]) != (int64_t)i * tl.frame_ticks)
            cfr = 0;
    /* the highest rate, which HLS's FRAME-RATE states: a variable-rate source's base rate, FFmpeg's guess
     * from its timestamps (a recording that skips frames: its camera's), when above the average */
    AVRational mfr = fr, rfr = vs->r_frame_rate;
    if (!cfr && rfr.num > 0 && rfr.den > 0 && av_q2d(rfr) > av_q2d(fr) + 0.01 && av_q2d(rfr) <= 240)
        mfr = tidy_rate(rfr);
    double duration = span + 1.0 / av_q2d(fr);
    if (duration > MAX_DURATION) {
        pc_job_fail(j, PC_EMEDIALIMIT, 1, "media_limit", "the video lasts %.0f s; the limit is %.0f s", duration, MAX_DURATION);
        goto out;
    }
    if ((r = pc_mkdirs(j->work_dir)) != 0) {
        pc_job_fail(j, r, 0, "io_error", "cannot create the work directory");
        goto out;
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/frames.bin", j->work_dir);
    if ((r = pc_frames_write(path, pts, n)) != 0) {
        pc_job_fail(j, r, 0, "io_error", "cannot write the frame index");
        goto out;
    }
    /* source keyframes: where a chunk's decoder can start (plan picks chunk starts near them) */
    if (retime) { /* a keyframe's decode-order time becomes its presentation time */
        m = 0;
        for (size_t i = 0; i < nkeys; i++) {
            const int64_t *e = bsearch(&keys[i], map, nmap, 2 * sizeof(*map), cmp_i64);
            if (e != NULL)
                keys[m++] = e[1];
        }
        nkeys = m;
        snprintf(path, sizeof(path), "%s/retime.bin", j->work_dir);
        if ((r = pc_frames_write(path, map, 2 * nmap)) != 0) {
            pc_job_fail(j, r, 0, "io_error", "cannot write the frame order");
            goto out;
        }
    }
    if (nkeys > 1)
        qsort(keys, nkeys, sizeof(*keys), cmp_i64);
    snprintf(path, sizeof(path), "%s/keyframes.bin", j->work_dir);
    if ((r = pc_frames_write(path, keys, nkeys)) != 0) {
        pc_job_fail(j, r, 0, "io_error", "cannot write the keyframe index");
        goto out;
    }
    AVRational sar = av_guess_sample_aspect_ratio(fmt, vs, NULL);
    if (sar.num <= 0 || sar.den <= 0)
        sar = (AVRational){1, 1};
    json_t *video = json_pack("{s:i, s:s, s:i, s:i, s:[i,i], s:i, s:[i,i], s:[i,i], s:b, s:I, s:I, s:I, s:s}", "index",
                              vidx, "codec", avcodec_get_name(vp->codec_id), "width", vp->width, "height", vp->height,
                              "sar", sar.num, sar.den, "rotation", pc_av_rotation(vs), "time_base", vs->time_base.num,
                              vs->time_base.den, "frame_rate", fr.num, fr.den, "cfr", cfr, "frames", (json_int_t)n,
                              "first_pts", (json_int_t)pts[0], "keyframes", (json_int_t)keyframes, "pix_fmt",
                              av_get_pix_fmt_name(vp->format) != NULL ? av_get_pix_fmt_name(vp->format) : "unknown");
    if (retime)
        json_object_set_new(video, "retime", json_true());
    json_object_set_new(video, "max_frame_rate", json_pack("[i,i]", mfr.num, mfr.den));
    if (genpts)
        json_object_set_new(video, "genpts", json_true());
    if (rm->name != NULL) /* the tasks read work/<id>/<copy> */
        json_object_set_new(video, "copy", json_string(rm->name));
    if (rm->parts > 0)
        json_object_set_new(video, "stitched", json_integer(rm->parts));
    json_t *audio = json_null();
    if (audio_ok) {
        const AVCodecParameters *ap = fmt->streams[aidx]->codecpar;
        audio = json_pack("{s:i, s:s, s:i, s:i, s:[i,i]}", "index", aidx, "codec", avcodec_get_name(ap->codec_id),
                          "sample_rate", ap->sample_rate, "channels", ap->ch_layout.nb_channels, "time_base",
                          fmt->streams[aidx]->time_base.num, fmt->streams[aidx]->time_base.den);
    }
    if (rm->njoins > 0 && audio_ok) { /* where audio.c resynchronises to the sample */
        json_t *ja = json_array();
        for (size_t i = 0; i < rm->njoins; i++)
            json_array_append_new(ja, json_real((double)rm->joins[i] / 1e6));
        json_object_set_new(audio, "joins", ja);
    }
    /* the colour the frames are in: what the first frame says (an alternative-transfer SEI included),
     * else the stream, else the container */
    struct colour col = first;
    colour_fill(&col, colour_of_par(vp));
    colour_fill(&col, (unsigned)vidx < COLOUR_STREAMS ? box[vidx] : COLOUR_UNKNOWN);
    json_object_set_new(video, "colour", json_pack("[i,i,i]", col.trc, col.pri, col.spc));
    /* what the upload is, also when its stitched copy was probed */
    json_t *info = json_pack("{s:s, s:I, s:f, s:o, s:o}", "format", rm->name != NULL ? rm->format : fmt->iformat->name,
                             "size", (json_int_t)(rm->name != NULL ? rm->size : (int64_t)st.st_size),
                             "duration", duration, "video", video, "audio", audio);
    /* text subtitles, from the upload itself (a copy the probe made holds only the video and audio) */
    json_t *subs = rm->name == NULL ? pc_subs_probe(fmt) : NULL;
    if (json_array_size(subs) > 0)
        json_object_set(info, "subtitles", subs);
    json_decref(subs);
    j->result = pc_json_dump(info);
    json_decref(info);
    atomic_store(&j->progress, 1000);
    PC_LOGI("probe", "video %s: %s %s %dx%d, %zu frames at %d/%d fps (%s), %.2f s, rotation %d, audio %s", j->video_id,
            fmt->iformat->name, avcodec_get_name(vp->codec_id), vp->width, vp->height, n, fr.num, fr.den,
            cfr ? "constant" : "variable", duration, pc_av_rotation(vs), audio_ok ? "yes" : "no");
out:
    free(pts);
    free(keys);
    free(shown);
    free(map);
    av_frame_free(&frame);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
    return remake && j->err == 0 ? 1 : j->err;
}

int pc_task_probe(pc_job *j)
{
    struct remake rm = {0};
    int r = probe_source(j, j->source, &rm);
    if (r != 1)
        return r;
    rm.name = rm.kind == REMAKE_STITCH ? PC_STITCHED_NAME : PC_TIMED_NAME;
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", j->work_dir, rm.name);
    if ((r = pc_mkdirs(j->work_dir)) != 0)
        return pc_job_fail(j, r, 0, "io_error", "cannot create the work directory");
    int64_t *joins = NULL;
    if (rm.kind == REMAKE_STITCH) {
        if ((rm.parts = pc_stitch(j, j->source, rm.fmt_flags, rm.vidx, rm.aidx, path, &joins, &rm.njoins)) < 0)
            return j->err;
        rm.joins = joins;
        PC_LOGI("probe", "video %s: %d parts stitched into %s", j->video_id, rm.parts, path);
    } else if (pc_copy_timed(j, j->source, rm.fmt_flags, rm.vidx, rm.fps, path) != 0) {
        return j->err;
    }
    r = probe_source(j, path, &rm);
    free(joins);
    return r;
}

/* ---- plan ---- */

/*
 * How long after it is shown a B-frame decodes in the CMAF segments (encode.c, decode_time): the
 * most common interval between the first segment's |n| frames (the largest of equals), or 0 when it
 * has fewer than two (encode then takes the nominal frame). Players built on libavformat shift every
 * presentation time by the most negative composition offset seen so far, so every B-frame's must
 * be at most this, and the first segment's B-frames set it; a constant rate makes it one frame,
 * and a variable rate whose first segment is regular keeps its decode times regular there, where
 * libavformat guesses the frame rate.
 */
static int64_t b_frame_ticks(const int64_t *ticks, size_t n)
{
    if (n < 2)
        return 0;
    n = n > 4096 ? 4096 : n;
    int64_t *d = malloc((n - 1) * sizeof(*d));
    if (d == NULL)
        return 0;
    for (size_t i = 0; i + 1 < n; i++)
        d[i] = ticks[i + 1] - ticks[i];
    qsort(d, n - 1, sizeof(*d), cmp_i64);
    int64_t best = d[0];
    size_t best_run = 0;
    for (size_t i = 0; i < n - 1;) {
        size_t k = i;
        while (k < n - 1 && d[k] == d[i])
            k++;
        if (k - i >= best_run) {
            best_run = k - i;
            best = d[i];
        }
        i = k;
    }
    free(d);
    return best;
}

int pc_task_plan(pc_job *j)
{
    json_t *info = json_loads(j->info != NULL ? j->info : "", 0, NULL);
    json_t *v = json_object_get(info, "video");
    if (info == NULL || v == NULL) {
        json_decref(info);
        return pc_job_fail(j, PC_EINTERNAL, 1, "internal_error", "the probe result is missing");
    }
    int64_t *pts = NULL, *ticks = NULL;
    size_t n = 0;
    pc_segment *segs = NULL;
    size_t *chunk_first = NULL;
    char path[4200];
    snprintf(path, sizeof(path), "%s/frames.bin", j->work_dir);
    int r = pc_frames_read(path, &pts, &n);
    if (r != 0 || n == 0) {
        json_decref(info);
        return pc_job_fail(j, r != 0 ? r : PC_EINTERNAL, 0, "io_error", "cannot read the frame index");
    }
    int w = (int)pc_json_int(v, "width", 0), h = (int)pc_json_int(v, "height", 0);
    json_t *sar = json_object_get(v, "sar"), *tb = json_object_get(v, "time_base"), *fr = json_object_get(v, "frame_rate");
    int sar_n = (int)json_integer_value(json_array_get(sar, 0)), sar_d = (int)json_integer_value(json_array_get(sar, 1));
    int rot = (int)pc_json_int(v, "rotation", 0);
    double dw = (double)w * (sar_d > 0 && sar_n > 0 ? (double)sar_n / sar_d : 1.0), dh = h;
    if (rot == 90 || rot == 270) {
        double t = dw;
        dw = dh;
        dh = t;
    }
    if (dw > MAX_DIM || dh > MAX_DIM) {
        /* the coded size was checked at probe; a pixel aspect ratio stretches it (320x240 at 40:1 displays as
         * 12800x240, and the ladder would encode that, or fail in x264 for good, five times) */
        free(pts);
        json_decref(info);
        return pc_job_fail(j, PC_EMEDIALIMIT, 1, "media_limit",
                           "the display size %.0fx%.0f (%dx%d at a pixel aspect ratio of %d:%d) is outside 1..%d pixels",
                           dw, dh, w, h, sar_n, sar_d, MAX_DIM);
    }
    int fps_n = (int)json_integer_value(json_array_get(fr, 0)), fps_d = (int)json_integer_value(json_array_get(fr, 1));
    int cfr = json_is_true(json_object_get(v, "cfr"));
    /* above 60 fps a constant-rate source keeps every k-th frame (variable-rate ones keep all) */
    int decim = cfr ? pc_decimation(fps_n, fps_d) : 1;
    AVRational out_fps = av_mul_q((AVRational){fps_n, fps_d}, (AVRational){1, decim});
    pc_rung rungs[PC_LADDER_MAX];
    int nr = pc_ladder_plan((int)lround(dw), (int)lround(dh), av_q2d(out_fps), rungs);
    if (nr == 0) {
        free(pts);
        json_decref(info);
        return pc_job_fail(j, PC_EMEDIALIMIT, 1, "media_limit", "the video is too small to encode");
    }
    pc_timeline tl;
    pc_timeline_init(&tl, cfr, pc_json_int(v, "first_pts", 0), (int)json_integer_value(json_array_get(tb, 0)),
                     (int)json_integer_value(json_array_get(tb, 1)), fps_n, fps_d);
    tl.decim = decim;
    ticks = malloc(n * sizeof(*ticks));
    segs = malloc(n * sizeof(*segs));
    chunk_first = malloc(n * sizeof(*chunk_first));
    if (ticks == NULL || segs == NULL || chunk_first == NULL) {
        free(pts);
        free(ticks);
        free(segs);
        free(chunk_first);
        json_decref(info);
        return pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
    }
    size_t kept = pc_timeline_ticks(&tl, pts, n, ticks);
    if (kept != n)
        PC_LOGI("plan", "video %s: %d/%d fps becomes %d/%d: %zu of %zu frames kept", j->video_id, fps_n, fps_d, out_fps.num,
                out_fps.den, kept, n);
    n = kept;
    int64_t last_dur = cfr ? tl.frame_ticks * decim : (int64_t)llround((double)tl.timescale * fps_d / fps_n);
    if (!cfr && n > 1 && ticks[n - 1] - ticks[n - 2] < last_dur)
        last_dur = ticks[n - 1] - ticks[n - 2];
    int64_t end = ticks[n - 1] + last_dur;
    int64_t seg_ticks = (int64_t)llround(j->env->segment_seconds * (double)tl.timescale);
    size_t ns = pc_segments_plan(ticks, pts, n, seg_ticks, segs);
    double duration = (double)end / (double)tl.timescale;
    double target = duration / (j->env->workers * 3.0);
    if (target < j->env->segment_seconds)
        target = j->env->segment_seconds;
    if (target > 32)
        target = 32;
    int64_t *keys = NULL;
    size_t nkeys = 0;
    snprintf(path, sizeof(path), "%s/keyframes.bin", j->work_dir);
    if (pc_frames_read(path, &keys, &nkeys) != 0)
        nkeys = 0; /* older work dirs: plan without keyframe hints */
    /* only a source GOP longer than our segments makes a boundary worth moving */
    int64_t shift_min = (int64_t)llround(j->env->segment_seconds * tl.tb_den / tl.tb_num);
    size_t nc = pc_chunks_plan(segs, ns, (int64_t)llround(target * (double)tl.timescale), (size_t)j->env->workers, keys,
                               nkeys, shift_min, chunk_first);
    free(keys);

    json_t *jr = json_array();
    for (int i = 0; i < nr; i++)
        json_array_append_new(jr, json_pack("{s:s, s:i, s:i, s:i, s:i, s:i}", "id", rungs[i].id, "width", rungs[i].width,
                                            "height", rungs[i].height, "bitrate", rungs[i].bitrate, "maxrate",
                                            rungs[i].maxrate, "bufsize", rungs[i].bufsize));
    json_t *js = json_array();
    for (size_t i = 0; i < ns; i++)
        json_array_append_new(js, json_pack("[I,I,I]", (json_int_t)segs[i].t, (json_int_t)segs[i].pts, (json_int_t)segs[i].frames));
    json_t *jc = json_array();
    for (size_t c = 0; c < nc; c++) {
        size_t first = chunk_first[c], last = c + 1 < nc ? chunk_first[c + 1] : ns;
        int64_t cend = last < ns ? segs[last].t : end;
        json_array_append_new(jc, json_pack("{s:I, s:I, s:f}", "first_segment", (json_int_t)first, "segments",
                                            (json_int_t)(last - first), "duration",
                                            (double)(cend - segs[first].t) / (double)tl.timescale));
    }
    /* thumbnails are captured by the encode chunks from the top rung: a tile every |interval| s
     * (at most 1000) and five poster candidates at 10%..90% */
    double interval = duration / 100 > 2 ? ceil(duration / 100) : 2;
    int tiles = (int)ceil(duration / interval);
    tiles = tiles < 1 ? 1 : tiles > 1000 ? 1000 : tiles;
    const pc_rung *top = &rungs[nr - 1];
    /* 160 px wide, or for sources taller than 1:2, 320 px high: a sheet (10 × 10 tiles) stays within
     * 1600 × 3200 px, where WebP's limit is 16383 a side (a 16x8192 source made 81920 px tiles) */
    int tile_w = 160, tile_h = (int)lround(160.0 * top->height / top->width / 2) * 2;
    if (tile_h > 320) {
        tile_h = 320;
        tile_w = (int)lround(320.0 * top->width / top->height / 2) * 2;
    }
    json_t *posters = json_array();
    for (int k = 0; k < 5; k++)
        json_array_append_new(posters, json_integer((json_int_t)llround(duration * (0.1 + 0.2 * k) * (double)tl.timescale)));
    json_t *thumbs = json_pack("{s:f, s:i, s:i, s:i, s:o}", "interval", interval, "tiles", tiles, "tile_width",
                               tile_w < 2 ? 2 : tile_w, "tile_height", tile_h < 2 ? 2 : tile_h, "posters", posters);
    json_t *audio = json_null();
    if (json_is_object(json_object_get(info, "audio")))
        audio = json_pack("{s:i, s:i, s:i, s:i}", "index", (int)pc_json_int(json_object_get(info, "audio"), "index", -1),
                          "sample_rate", 48000, "channels", 2, "bitrate", 128000);
    json_t *joins = json_object_get(json_object_get(info, "audio"), "joins");
    if (json_is_array(joins) && json_is_object(audio)) /* seconds where a stitched part's audio begins */
        json_object_set(audio, "joins", joins);
    json_t *plan = json_pack(
        "{s:i, s:f, s:f, s:f, s:I, s:b, s:[i,i], s:I, s:I, s:I, s:i, s:[i,i], s:i, s:s, s:o, s:o, s:o, s:o}", "version", 1,
        "duration", duration, "segment_duration", j->env->segment_seconds, "gop_duration", j->env->gop_seconds, "timescale",
        (json_int_t)tl.timescale, "cfr", cfr, "frame_rate", out_fps.num, out_fps.den, "frame_ticks", (json_int_t)(tl.frame_ticks * decim),
        "first_pts", (json_int_t)tl.first_pts, "end", (json_int_t)end, "video_index", (int)pc_json_int(v, "index", 0),
        "time_base", tl.tb_num, tl.tb_den, "rotation", rot, "preset", j->env->preset, "rungs", jr, "segments", js,
        "chunks", jc, "audio", audio);
    /* HLS's FRAME-RATE and the MPD's maxFrameRate: the output's rate, or a variable-rate source's highest */
    json_t *mfr = json_object_get(v, "max_frame_rate");
    if (plan != NULL)
        json_object_set_new(plan, "max_frame_rate", cfr || !json_is_array(mfr) ? json_pack("[i,i]", out_fps.num, out_fps.den)
                                                                                   : json_deep_copy(mfr));
    json_object_set_new(plan, "thumbs", thumbs);
    json_object_set_new(plan, "b_frame_ticks", json_integer((json_int_t)b_frame_ticks(ticks, ns > 0 ? segs[0].frames : 0)));
    if (json_is_true(json_object_get(v, "retime"))) /* frame times from retime.bin, not the packets */
        json_object_set_new(plan, "retime", json_true());
    if (decim > 1) { /* the timeline runs at the source's rate; encode keeps every decim-th slot */
        json_object_set_new(plan, "source_frame_rate", json_pack("[i,i]", fps_n, fps_d));
        json_object_set_new(plan, "decimate", json_integer(decim));
    }
    if (json_is_true(json_object_get(v, "genpts"))) /* open the source with AVFMT_FLAG_GENPTS */
        json_object_set_new(plan, "genpts", json_true());
    if (json_is_string(json_object_get(v, "copy"))) /* open the copy in the work directory */
        json_object_set(plan, "copy", json_object_get(v, "copy"));
    else if (json_array_size(json_object_get(info, "subtitles")) > 0) /* read from the upload (subtitles.c) */
        json_object_set(plan, "subtitles", json_object_get(info, "subtitles"));
    json_t *colour = json_object_get(v, "colour"); /* [transfer, primaries, matrix] as probed */
    if (json_is_array(colour))
        json_object_set(plan, "colour", colour);
    j->result = pc_json_dump(plan);
    json_decref(plan);
    json_decref(info);
    free(pts);
    free(ticks);
    free(segs);
    free(chunk_first);
    PC_LOGI("plan", "video %s: %d rungs up to %dx%d, %zu segments in %zu chunks, timescale %" PRId64 "%s", j->video_id, nr,
            rungs[nr - 1].width, rungs[nr - 1].height, ns, nc, tl.timescale, cfr ? "" : " (variable frame rate)");
    atomic_store(&j->progress, 1000);
    return 0;
}
