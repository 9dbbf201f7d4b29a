/* Joined recordings made continuous; see stitch.h. */
#include "stitch.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include "av_util.h"
#include "pc_log.h"

static uint64_t dist(int64_t a, int64_t b)
{
    return a > b ? (uint64_t)a - (uint64_t)b : (uint64_t)b - (uint64_t)a;
}

/* Whether the jump from video part |p| to |q| is a join by its times alone (no audio to tell). */
static int join_by_times(const pc_stitch_part *p, const pc_stitch_part *q)
{
    int back = q->dfirst < p->dlast;
    return (back && (q->key || q->dfirst < p->dlast - 1000000)) || q->dfirst > p->end + PC_STITCH_GAP_US;
}

/* Whether any of the |na| audio parts |a| has bytes within video part |q|'s. */
static int has_sound(const pc_stitch_part *q, const pc_stitch_part *a, size_t na)
{
    for (size_t i = 0; i < na; i++)
        if (a[i].pos <= q->lpos && a[i].lpos >= q->pos)
            return 1;
    return 0;
}

void pc_stitch_real_joins(const pc_stitch_part *v, size_t nv, const pc_stitch_part *a, size_t na, uint8_t *real)
{
    int by_audio = na > 0;
    for (size_t i = 0; i < na; i++)
        by_audio &= a[i].pos >= 0 && a[i].lpos >= 0;
    for (size_t k = 0; k < nv; k++)
        by_audio &= v[k].pos >= 0 && v[k].lpos >= 0;
    for (size_t k = 1; k < nv; k++) /* between two parts without sound, the times tell */
        real[k] = (!by_audio || (!has_sound(&v[k - 1], a, na) && !has_sound(&v[k], a, na))) && join_by_times(&v[k - 1], &v[k]);
    if (!by_audio)
        return;
    for (size_t i = 0; i < na; i++)
        for (int side = 0; side < 2; side++) { /* where audio part i starts, ends */
            int64_t b = side == 0 ? a[i].pos : a[i].lpos;
            size_t best = 0;
            uint64_t bd = UINT64_MAX;
            for (size_t k = 1; k < nv; k++)
                if (dist(b, v[k].pos) < bd) {
                    bd = dist(b, v[k].pos);
                    best = k;
                }
            /* the audio's first start and last end are the file's, unless a jump is nearer */
            if (side == 0 && i == 0 && dist(b, v[0].pos) <= bd)
                continue;
            if (side == 1 && i + 1 == na && dist(b, v[nv - 1].lpos) <= bd)
                continue;
            if (best > 0)
                real[best] = 1;
        }
}

void pc_stitch_offsets(const pc_stitch_part *v, size_t nv, pc_stitch_part *a, size_t na, double frame_us, int64_t *off)
{
    if (nv == 0)
        return;
    for (size_t i = 0; i < na; i++) {
        size_t best = i < nv ? i : nv - 1;
        if (a[i].pos >= 0 && a[i].lpos >= 0) {
            int64_t most = INT64_MIN; /* bytes in common; a gap between them counts as less than none */
            for (size_t k = 0; k < nv; k++) {
                if (v[k].pos < 0 || v[k].lpos < 0)
                    continue;
                int64_t lo = a[i].pos > v[k].pos ? a[i].pos : v[k].pos;
                int64_t hi = a[i].lpos < v[k].lpos ? a[i].lpos : v[k].lpos;
                if (hi - lo > most) {
                    most = hi - lo;
                    best = k;
                }
            }
        }
        a[i].owner = best;
    }
    off[0] = 0;
    for (size_t k = 1; k < nv; k++) {
        /* shown after the previous part's video */
        int64_t need = v[k - 1].end + off[k - 1] - v[k].first;
        if (frame_us > 0) { /* the next whole frame slot counted from the first part's first frame (within
                             * a thousandth of a frame: times in µs of 29.97 fps are rounded) */
            double slots = ceil((double)(v[k].first + need - v[0].first) / frame_us - 1e-3);
            need = v[0].first + llround(slots * frame_us) - v[k].first;
        }
        off[k] = need;
    }
}

/* One stream being copied: its parts (pass 1), then where the copy is in them (pass 2). */
struct track {
    int in, out; /* stream index in the source, in the copy */
    int audio;
    int aac;       /* audio: AAC, whose configuration Matroska keeps once per track */
    int adts0;     /* the first part's ADTS sample rate index and channels, or -1 */
    int reconfig;  /* a later part's differ */
    /* audio whose parameters the source's header did not give (a stream that starts in a later part):
     * learnt by decoding its first packets (learn 1: to do, -1: failed) into |par|, and the stream's
     * index in the source does not exist yet when it is opened (late) */
    int learn, late, tries;
    AVCodecContext *dec;
    AVCodecParameters *par;
    /* its packets without times (libavformat cannot time the frames that follow a PES header without
     * the sample rate) are timed after the one before once the parameters are known: the stream's
     * packets read (timed or not), how many had been when they were learnt, the next packet's time */
    int64_t seen, learnt_at, next_ts;
    AVRational tb;
    int64_t period, ref; /* the clock's wrap (ticks, 0: none); the last decode time read, unwrapped */
    double frame_us; /* a packet's duration when it states none (video) */
    pc_stitch_part *parts;
    int64_t *from; /* index (among its timed packets) of each part's first packet */
    uint8_t *keep_all; /* video: a part without keyframes (intra refresh) keeps its frames before the first */
    size_t n, cap;
    int64_t count, last; /* timed packets so far; the last one's decode time (µs) */
    /* video, the part being read: where its first keyframe is (LEAD_*), that keyframe's time, and
     * (pass 1) the range of all its packets and of those kept, and whether it has a keyframe */
    int lead;
    int64_t key_pts;
    pc_stitch_part all, kept;
    int64_t nkept;
    int has_key;
    size_t cur;          /* pass 2: the part being copied */
    size_t out_part;     /* the part of the last packet written; its decode time */
    int64_t out_last, dropped, lead_dropped;
};

static int64_t us(int64_t t, AVRational tb)
{
    return av_rescale_q(t, tb, AV_TIME_BASE_Q);
}

/* Unwraps |p|'s times where its clock wrapped inside a part after the first (pc_stitch_unwrap), the
 * same way in both passes: against the stream's own last time or, when that is not near, the other
 * stream's |o| (NULL: none): audio that starts in a later part, or resumes after a stretch without
 * sound, is on the same clock as its video. */
static void unwrap(struct track *t, const struct track *o, AVPacket *p)
{
    int64_t tol = av_rescale_q(PC_STITCH_WRAP_US, AV_TIME_BASE_Q, t->tb), ref = t->ref;
    int64_t x = p->dts != AV_NOPTS_VALUE ? p->dts : p->pts;
    int near = ref != AV_NOPTS_VALUE && x != AV_NOPTS_VALUE && x >= ref - tol && x <= ref + tol;
    if (!near && pc_stitch_unwrap(x, ref, t->period, tol) == x && o != NULL && o->ref != AV_NOPTS_VALUE)
        ref = av_rescale_q(o->ref, o->tb, t->tb);
    p->dts = pc_stitch_unwrap(p->dts, ref, t->period, tol);
    p->pts = pc_stitch_unwrap(p->pts, p->dts != AV_NOPTS_VALUE ? p->dts : ref, t->period, tol);
    t->ref = p->dts != AV_NOPTS_VALUE ? p->dts : p->pts;
}

/* The track of |tr| that is not |t|, or NULL. */
static const struct track *other(const struct track *tr, int ntr, const struct track *t)
{
    return ntr < 2 ? NULL : t == &tr[0] ? &tr[1] : &tr[0];
}

enum { LEAD_WAIT, LEAD_PICTURES, LEAD_DONE };

/* Whether the video packet |p| is one a decoder drops at the start of a part (|newpart|: its first
 * packet): before the part's first keyframe (a part cut mid-GOP), or a leading picture of that
 * keyframe's GOP (shown before it: an open GOP, whose references are in the part before). The
 * same decisions in both passes, as probe makes them for the start of a file. */
static int lead_drop(struct track *t, const AVPacket *p, int newpart)
{
    if (t->audio)
        return 0;
    if (newpart)
        t->lead = LEAD_WAIT;
    int key = (p->flags & AV_PKT_FLAG_KEY) != 0;
    int64_t pts = p->pts != AV_NOPTS_VALUE ? p->pts : p->dts;
    switch (t->lead) {
    case LEAD_WAIT:
        if (!key)
            return 1;
        t->lead = LEAD_PICTURES;
        t->key_pts = pts;
        return 0;
    case LEAD_PICTURES:
        if (key) {
            t->lead = LEAD_DONE;
            return 0;
        }
        return pts < t->key_pts;
    default:
        return 0;
    }
}

/* Widens |q|'s times and last position to take in |r|, which comes after it in the file. */
static void range_merge(pc_stitch_part *q, const pc_stitch_part *r)
{
    q->first = r->first < q->first ? r->first : q->first;
    q->end = r->end > q->end ? r->end : q->end;
    q->dfirst = r->dfirst < q->dfirst ? r->dfirst : q->dfirst;
    q->dlast = r->dlast > q->dlast ? r->dlast : q->dlast;
    q->lpos = r->lpos > q->lpos ? r->lpos : q->lpos;
}

static void range_add(pc_stitch_part *q, int64_t pt, int64_t dur, int64_t d, int64_t pos, int key)
{
    pc_stitch_part one = {.first = pt, .end = pt + dur, .dfirst = d, .dlast = d, .pos = pos, .lpos = pos, .key = key};
    if (q->pos == -2) /* empty */
        *q = one;
    else
        range_merge(q, &one);
}

/* The part being read is complete: its range is that of the packets kept, or of all of them when
 * it has no keyframe (then all are kept). */
static void part_done(struct track *t)
{
    if (t->n == 0)
        return;
    size_t k = t->n - 1;
    t->keep_all[k] = !t->audio && !t->has_key;
    t->parts[k] = t->nkept > 0 && !t->keep_all[k] ? t->kept : t->all;
    t->parts[k].owner = k;
}

/* Adds the packet to |t|'s parts. Returns 0, or PC_ENOMEM / PC_EMEDIALIMIT. */
static int track_scan(struct track *t, const AVPacket *p)
{
    int64_t d = us(p->dts != AV_NOPTS_VALUE ? p->dts : p->pts, t->tb);
    int64_t pt = p->pts != AV_NOPTS_VALUE ? us(p->pts, t->tb) : d;
    int64_t dur = p->duration > 0 ? us(p->duration, t->tb) : llround(t->frame_us);
    int newpart = t->n == 0 || pc_stitch_jump(t->last, t->all.end, d);
    if (newpart) {
        if (t->n == PC_STITCH_MAX_PARTS)
            return PC_EMEDIALIMIT;
        if (t->n == t->cap) {
            size_t nc = t->cap ? t->cap * 2 : 8;
            pc_stitch_part *np = realloc(t->parts, nc * sizeof(*np));
            if (np == NULL)
                return PC_ENOMEM;
            t->parts = np;
            int64_t *nf = realloc(t->from, nc * sizeof(*nf));
            if (nf == NULL)
                return PC_ENOMEM;
            t->from = nf;
            uint8_t *nk = realloc(t->keep_all, nc);
            if (nk == NULL)
                return PC_ENOMEM;
            t->keep_all = nk;
            t->cap = nc;
        }
        part_done(t);
        t->from[t->n++] = t->count;
        t->all.pos = t->kept.pos = -2;
        t->nkept = 0;
        t->has_key = 0;
    }
    if (newpart && t->aac && p->size >= 4 && p->data[0] == 0xff && (p->data[1] & 0xf6) == 0xf0) { /* ADTS: layer 0 */
        int sig = (p->data[2] >> 2 & 0xf) << 3 | (p->data[2] & 1) << 2 | p->data[3] >> 6;
        if (t->n == 1)
            t->adts0 = sig;
        else if (sig != t->adts0)
            t->reconfig = 1;
    }
    int key = (p->flags & AV_PKT_FLAG_KEY) != 0;
    t->has_key |= key;
    range_add(&t->all, pt, dur, d, p->pos, key);
    if (!lead_drop(t, p, newpart)) {
        range_add(&t->kept, pt, dur, d, p->pos, key);
        t->nkept++;
    }
    t->last = d;
    t->count++;
    return 0;
}

static struct track *track_of(struct track *tr, int ntr, int idx)
{
    for (int i = 0; i < ntr; i++)
        if (tr[i].in == idx)
            return &tr[i];
    return NULL;
}

static int interrupt_cb(void *opaque)
{
    return pc_job_canceled(opaque);
}

static int fail_av(pc_job *j, int e, const char *what)
{
    char eb[128];
    if (pc_job_canceled(j))
        return pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
    return pc_job_fail(j, PC_EIO, 0, "io_error", "%s (%s)", what, pc_av_err(e, eb, sizeof(eb)));
}

/* The copy's streams, as the source's. Returns 0 or an AVERROR. */
static int add_streams(AVFormatContext *fmt, AVFormatContext *oc, struct track *tr, int ntr)
{
    for (int i = 0; i < ntr; i++) {
        AVStream *st = avformat_new_stream(oc, NULL);
        if (st == NULL)
            return AVERROR(ENOMEM);
        tr[i].out = st->index;
        st->time_base = tr[i].tb;
        if (tr[i].par != NULL) { /* learnt: the source stream may not exist yet (late) */
            int r = avcodec_parameters_copy(st->codecpar, tr[i].par);
            if (r < 0)
                return r;
            st->codecpar->codec_tag = 0;
            continue;
        }
        const AVStream *in = fmt->streams[tr[i].in];
        int r = avcodec_parameters_copy(st->codecpar, in->codecpar);
        if (r < 0)
            return r;
        st->codecpar->codec_tag = 0;
        st->sample_aspect_ratio = in->sample_aspect_ratio;
        st->avg_frame_rate = in->avg_frame_rate;
        st->r_frame_rate = in->r_frame_rate;
        st->disposition = in->disposition;
        for (int k = 0; k < in->nb_side_data; k++) { /* the display matrix, HDR metadata */
            uint8_t *d = av_stream_new_side_data(st, in->side_data[k].type, in->side_data[k].size);
            if (d == NULL)
                return AVERROR(ENOMEM);
            memcpy(d, in->side_data[k].data, in->side_data[k].size);
        }
    }
    return 0;
}

/* An output being written: |tmp| until finished, then renamed to its name. */
struct out {
    AVFormatContext *oc;
    char tmp[4300];
    int opened; /* tmp exists */
};

/* Opens |o| with |muxer| for the tracks' streams of |fmt|, next to |dst|. |refusal| is the message
 * when the muxer refuses a stream (a codec the container cannot carry). Returns 0 or fails |j|. */
static int out_open(pc_job *j, struct out *o, const char *muxer, const char *dst, AVFormatContext *fmt, struct track *tr,
                    int ntr, const char *refusal)
{
    char eb[128];
    snprintf(o->tmp, sizeof(o->tmp), "%s.part", dst);
    int e = avformat_alloc_output_context2(&o->oc, NULL, muxer, o->tmp);
    if (e >= 0)
        e = add_streams(fmt, o->oc, tr, ntr);
    if (e < 0)
        return fail_av(j, e, "cannot set up the copy of the source");
    o->oc->interrupt_callback.callback = interrupt_cb;
    o->oc->interrupt_callback.opaque = j;
    if ((e = avio_open2(&o->oc->pb, o->tmp, AVIO_FLAG_WRITE, &o->oc->interrupt_callback, NULL)) < 0)
        return fail_av(j, e, "cannot write the copy of the source");
    o->opened = 1;
    if ((e = avformat_write_header(o->oc, NULL)) < 0) {
        if (pc_job_canceled(j))
            return pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
        return pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable", "%s (%s)", refusal, pc_av_err(e, eb, sizeof(eb)));
    }
    return 0;
}

/* Writes |pkt| (the copy's stream index and time base set) to |o|. Returns 0 or fails |j|. */
static int out_write(pc_job *j, struct out *o, AVPacket *pkt, const char *refusal)
{
    char eb[128];
    int e = av_interleaved_write_frame(o->oc, pkt);
    if (e >= 0)
        return 0;
    av_packet_unref(pkt);
    if (pc_job_canceled(j))
        return pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
    if (e == AVERROR(EIO) || e == AVERROR(ENOSPC) || e == AVERROR(EDQUOT) || e == AVERROR(ENOMEM) || e == AVERROR(EFBIG))
        return fail_av(j, e, "cannot write the copy of the source");
    /* the muxer's and its bitstream filters' checks: timestamps it cannot take, a codec that
     * changed between parts (AAC, then MP2) */
    return pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable", "%s (%s)", refusal, pc_av_err(e, eb, sizeof(eb)));
}

/* Finishes |o| as |dst|. Returns 0 or fails |j|. */
static int out_finish(pc_job *j, struct out *o, const char *dst)
{
    int e = av_write_trailer(o->oc);
    if (e >= 0)
        e = avio_closep(&o->oc->pb);
    if (e < 0)
        return fail_av(j, e, "cannot write the copy of the source");
    if (rename(o->tmp, dst) != 0)
        return pc_job_fail(j, PC_EIO, 0, "io_error", "cannot write the copy of the source");
    o->opened = 0;
    return 0;
}

static void out_close(struct out *o)
{
    if (o->oc != NULL) {
        avio_closep(&o->oc->pb);
        avformat_free_context(o->oc);
        o->oc = NULL;
    }
    if (o->opened)
        unlink(o->tmp);
    o->opened = 0;
}

/* Opens |src| for a pass over it, with streams |vidx| and |aidx| (-1: none) present. Returns 0 or fails |j|. */
static int open_src(pc_job *j, const char *src, int fmt_flags, int vidx, int aidx, AVFormatContext **fmt)
{
    int e = pc_av_open(j, src, fmt_flags, fmt);
    if (e >= 0)
        e = avformat_find_stream_info(*fmt, NULL);
    if (e >= 0 && (vidx >= (int)(*fmt)->nb_streams || aidx >= (int)(*fmt)->nb_streams))
        e = AVERROR_STREAM_NOT_FOUND;
    return e < 0 ? fail_av(j, e, "cannot reopen the source") : 0;
}

#define JOIN_REFUSED                                                                                                  \
    "the timestamps jump (recordings joined with a discontinuity) and the parts cannot be joined; remux each part, " \
    "or the whole with continuous times, and upload that"

/* Sets up |t| for the source's stream |t->in| (in pass 1, or as it appears). */
static void track_start(struct track *t, const AVFormatContext *fmt)
{
    const AVStream *st = fmt->streams[t->in];
    t->tb = st->time_base;
    t->period = st->pts_wrap_bits > 0 && st->pts_wrap_bits < 63 ? INT64_C(1) << st->pts_wrap_bits : 0;
    if (t->audio) {
        t->aac = st->codecpar->codec_id == AV_CODEC_ID_AAC;
        t->adts0 = -1;
        t->learn = st->codecpar->ch_layout.nb_channels <= 0 || st->codecpar->sample_rate <= 0;
    }
}

/* Audio track |t| whose parameters are not known (learn): decodes its packet |p| and takes them from
 * the first frame. Gives up (learn -1) when nothing decodes from its first 256 packets. Returns 0 or
 * PC_ENOMEM. */
static int learn_params(const AVFormatContext *fmt, struct track *t, const AVPacket *p)
{
    const AVCodecParameters *cp = fmt->streams[t->in]->codecpar;
    if (t->dec == NULL) {
        const AVCodec *c = avcodec_find_decoder(cp->codec_id);
        if (c == NULL) {
            t->learn = -1;
            return 0;
        }
        if ((t->dec = avcodec_alloc_context3(c)) == NULL)
            return PC_ENOMEM;
        t->dec->pkt_timebase = t->tb;
        if (avcodec_parameters_to_context(t->dec, cp) < 0 || avcodec_open2(t->dec, c, NULL) < 0) {
            avcodec_free_context(&t->dec);
            t->learn = -1;
            return 0;
        }
    }
    AVFrame *f = av_frame_alloc();
    if (f == NULL)
        return PC_ENOMEM;
    int r = avcodec_send_packet(t->dec, p) >= 0 ? avcodec_receive_frame(t->dec, f) : -1;
    if (r == 0 && f->sample_rate > 0 && f->ch_layout.nb_channels > 0) {
        if ((t->par = avcodec_parameters_alloc()) == NULL || avcodec_parameters_from_context(t->par, t->dec) < 0 ||
            av_channel_layout_copy(&t->par->ch_layout, &f->ch_layout) < 0) {
            av_frame_free(&f);
            return PC_ENOMEM;
        }
        t->par->sample_rate = f->sample_rate;
        t->par->format = f->format;
        t->learn = 0;
        t->learnt_at = t->seen;
        avcodec_free_context(&t->dec);
    } else if (++t->tries == 256) {
        t->learn = -1;
        avcodec_free_context(&t->dec);
    }
    av_frame_free(&f);
    return 0;
}

/* The source's stream |idx| has just appeared (a later part's program table added it): the audio
 * track |a|, looking for audio, takes it if it is some. Returns 0 or PC_ENOMEM. */
static int adopt(const AVFormatContext *fmt, struct track *a, int idx)
{
    const AVCodecParameters *cp = fmt->streams[idx]->codecpar;
    if (cp->codec_type != AVMEDIA_TYPE_AUDIO)
        return 0;
    a->in = idx;
    a->late = 1;
    track_start(a, fmt);
    if (!a->learn && ((a->par = avcodec_parameters_alloc()) == NULL || avcodec_parameters_copy(a->par, cp) < 0))
        return PC_ENOMEM;
    return 0;
}

/* Times |p|, the |t->seen|-th packet of |t|, if it has no time and follows one whose time and
 * duration are known (learnt audio: see struct track), the same way in both passes. */
static void time_untimed(struct track *t, AVPacket *p)
{
    int64_t dur = p->duration;
    if (dur <= 0 && t->par != NULL && t->par->frame_size > 0 && t->par->sample_rate > 0)
        dur = av_rescale_q(t->par->frame_size, (AVRational){1, t->par->sample_rate}, t->tb);
    int known = t->par != NULL && t->seen > t->learnt_at && t->next_ts != AV_NOPTS_VALUE && dur > 0;
    if (p->pts == AV_NOPTS_VALUE && p->dts == AV_NOPTS_VALUE) {
        if (!known)
            return;
        p->pts = p->dts = t->next_ts;
    } else if (known && p->pos < 0 && (p->dts != AV_NOPTS_VALUE ? p->dts : p->pts) <= t->next_ts - dur / 2) {
        p->pts = p->dts = t->next_ts; /* a frame the parser split from a PES was given the PES's time (MP2) */
    }
    t->next_ts = dur > 0 ? (p->dts != AV_NOPTS_VALUE ? p->dts : p->pts) + dur : AV_NOPTS_VALUE;
}

/* What both passes do to a packet |p| of track |t| before anything else, so that they make the
 * same decisions: count it, learn the audio's parameters (pass 1; learn is settled by pass 2), time
 * it if it has no time and can be, and unwrap its clock. Returns 0 or PC_ENOMEM. */
static int prepare(const AVFormatContext *fmt, struct track *tr, int ntr, struct track *t, AVPacket *p)
{
    t->seen++;
    if (t->learn > 0 && learn_params(fmt, t, p) != 0)
        return PC_ENOMEM;
    time_untimed(t, p);
    if (p->dts != AV_NOPTS_VALUE || p->pts != AV_NOPTS_VALUE)
        unwrap(t, other(tr, ntr, t), p);
    return 0;
}

/* Pass 1: every timed packet of the tracks, cut into parts. Returns 0 or fails |j|. */
static int scan(pc_job *j, AVFormatContext *fmt, struct track *tr, int ntr, AVPacket *pkt)
{
    char eb[128];
    int known = (int)fmt->nb_streams; /* streams with a higher index appear as the file is read */
    for (int64_t k = 0;; k++) {
        int r = av_read_frame(fmt, pkt);
        if (r < 0 && r != AVERROR_EOF) { /* as probe reads the file: up to the error (pass 2 stops at the same place) */
            if (pc_job_canceled(j))
                return pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
            PC_LOGW("probe", "video %s: read error while stitching (%s); using what was read", j->video_id,
                    pc_av_err(r, eb, sizeof(eb)));
        }
        if (r < 0) {
            for (int i = 0; i < ntr; i++)
                part_done(&tr[i]);
            return 0;
        }
        if (ntr > 1 && tr[1].in < 0 && pkt->stream_index >= known && adopt(fmt, &tr[1], pkt->stream_index) != 0) {
            av_packet_unref(pkt);
            return pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
        }
        struct track *t = track_of(tr, ntr, pkt->stream_index);
        if (t != NULL && prepare(fmt, tr, ntr, t, pkt) != 0) {
            av_packet_unref(pkt);
            return pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
        }
        if (t != NULL && (pkt->dts != AV_NOPTS_VALUE || pkt->pts != AV_NOPTS_VALUE)) {
            if ((r = track_scan(t, pkt)) != 0) {
                av_packet_unref(pkt);
                if (r == PC_ENOMEM)
                    return pc_job_fail(j, r, 0, "out_of_memory", "out of memory");
                return pc_job_fail(j, r, 1, "undecodable", "the timestamps jump more than %d times", PC_STITCH_MAX_PARTS);
            }
        }
        av_packet_unref(pkt);
        if ((k & 1023) == 0 && pc_job_canceled(j))
            return pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
    }
}

/* The video's jumps that are not joins (pc_stitch_real_joins) are no part boundaries: the parts
 * either side become one, whose times stay as they are. */
static void merge_false_joins(pc_job *j, struct track *v, const struct track *a)
{
    uint8_t *real = calloc(v->n, 1);
    if (real == NULL || v->n < 2) {
        free(real);
        return; /* out of memory: every jump counts, as before this check */
    }
    pc_stitch_real_joins(v->parts, v->n, a != NULL ? a->parts : NULL, a != NULL ? a->n : 0, real);
    size_t m = 1;
    for (size_t k = 1; k < v->n; k++) {
        if (real[k]) {
            v->parts[m] = v->parts[k];
            v->parts[m].owner = m;
            v->from[m] = v->from[k];
            v->keep_all[m++] = v->keep_all[k];
            continue;
        }
        range_merge(&v->parts[m - 1], &v->parts[k]);
    }
    if (m < v->n)
        PC_LOGW("probe", "video %s: %zu of the video's %zu jumps are not joins (its audio runs on through them)", j->video_id,
                v->n - m, v->n - 1);
    v->n = m;
    free(real);
}

/* Moves every part by the same amount, if need be, so that no time in the copy is negative: the
 * Matroska muxer would shift them all itself, and the audio joins (the copy's times) would be off by
 * as much. (A recording that starts within a minute of its clock's wrap: libavformat makes the times
 * before the wrap negative.) The shift is whole milliseconds, Matroska's unit. */
static void non_negative(const struct track *tr, int ntr, int64_t *off)
{
    int64_t low = 0;
    for (int i = 0; i < ntr; i++)
        for (size_t k = 0; k < tr[i].n; k++) {
            const pc_stitch_part *q = &tr[i].parts[k];
            int64_t t = (q->first < q->dfirst ? q->first : q->dfirst) + off[q->owner];
            low = t < low ? t : low;
        }
    if (low < 0) {
        int64_t shift = (-low + 999) / 1000 * 1000;
        for (size_t k = 0; k < tr[0].n; k++)
            off[k] += shift;
    }
}

/* Pass 2: the tracks' packets, moved by their part's offset, into |o|; the time (µs) where each audio part
 * after the first begins in |*joins| (room for a part each). Returns 0 or fails |j|. */
static int copy(pc_job *j, AVFormatContext *fmt, struct out *o, struct track *tr, int ntr, AVPacket *pkt,
                const int64_t *off, int64_t **joins, size_t *njoins)
{
    for (int64_t k = 0;; k++) {
        int r = av_read_frame(fmt, pkt);
        if (r < 0)
            return r == AVERROR_EOF || !pc_job_canceled(j) ? 0 : pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
        struct track *t = track_of(tr, ntr, pkt->stream_index);
        if (t != NULL && prepare(fmt, tr, ntr, t, pkt) != 0) {
            av_packet_unref(pkt);
            return pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
        }
        if (t == NULL || (pkt->dts == AV_NOPTS_VALUE && pkt->pts == AV_NOPTS_VALUE)) {
            av_packet_unref(pkt);
            continue;
        }
        int newpart = t->count == 0;
        while (t->cur + 1 < t->n && t->count >= t->from[t->cur + 1]) {
            t->cur++;
            newpart = 1;
        }
        t->count++;
        if (lead_drop(t, pkt, newpart) && !t->keep_all[t->cur]) { /* decoders would drop it */
            t->lead_dropped++;
            av_packet_unref(pkt);
            continue;
        }
        int64_t move = av_rescale_q(off[t->parts[t->cur].owner], AV_TIME_BASE_Q, t->tb);
        if (pkt->pts != AV_NOPTS_VALUE)
            pkt->pts += move;
        if (pkt->dts != AV_NOPTS_VALUE)
            pkt->dts += move;
        if (!t->audio && pkt->dts != AV_NOPTS_VALUE && t->out_last != AV_NOPTS_VALUE && pkt->dts <= t->out_last) {
            /* a part whose first frames decode before the previous part's last shows (B-frames after
             * a part without): decoded right after it instead, as they must be, but no later than shown */
            pkt->dts = t->out_last + 1;
            if (pkt->pts != AV_NOPTS_VALUE && pkt->dts > pkt->pts)
                pkt->dts = pkt->pts;
        }
        int64_t d = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pkt->pts, p = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : d;
        /* audio of a part that begins before the previous part's ends (audio usually starts a
         * little before the video and outlasts it): packets that would be decoded before the last one
         * written go; the audio task trims the overlap that remains, exactly, at the join */
        if (t->audio && t->out_last != AV_NOPTS_VALUE && d <= t->out_last) {
            t->dropped++;
            av_packet_unref(pkt);
            continue;
        }
        if (t->audio && t->cur != t->out_part && t->out_last != AV_NOPTS_VALUE) {
            if (*njoins == t->n) { /* cannot happen: a join per part */
                av_packet_unref(pkt);
                return pc_job_fail(j, PC_EINTERNAL, 0, "internal_error", "stitching lost count of the audio parts");
            }
            (*joins)[(*njoins)++] = us(p, t->tb);
        }
        t->out_last = d;
        t->out_part = t->cur;
        pkt->stream_index = t->out;
        pkt->pos = -1;
        av_packet_rescale_ts(pkt, t->tb, o->oc->streams[t->out]->time_base);
        if (out_write(j, o, pkt, JOIN_REFUSED) != 0)
            return -1;
        if ((k & 1023) == 0 && pc_job_canceled(j))
            return pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
    }
}

int pc_stitch(pc_job *j, const char *src, int fmt_flags, int vidx, int aidx, const char *dst, int64_t **joins,
              size_t *njoins)
{
    struct track tr[2];
    memset(tr, 0, sizeof(tr));
    int ntr = 2; /* without an audio stream (aidx -1), the audio track takes one that appears later */
    tr[0].in = vidx;
    tr[1].in = aidx;
    tr[1].audio = 1;
    AVFormatContext *fmt = NULL;
    struct out o = {0};
    AVPacket *pkt = av_packet_alloc();
    int64_t *off = NULL;
    int ret = -1;
    *joins = NULL;
    *njoins = 0;
    if (pkt == NULL) {
        pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
        goto out;
    }
    for (int pass = 0; pass < 2; pass++) {
        if (open_src(j, src, fmt_flags, vidx, tr[1].late ? -1 : tr[1].in, &fmt) != 0)
            goto out;
        for (int i = 0; i < ntr; i++) {
            if (pass == 0 && tr[i].in >= 0)
                track_start(&tr[i], fmt);
            tr[i].cur = 0;
            tr[i].count = 0;
            tr[i].out_last = AV_NOPTS_VALUE;
            tr[i].ref = tr[i].next_ts = AV_NOPTS_VALUE;
            tr[i].seen = 0;
        }
        if (pass == 0) {
            AVRational fr = fmt->streams[vidx]->avg_frame_rate;
            if (fr.num <= 0 || fr.den <= 0)
                fr = fmt->streams[vidx]->r_frame_rate;
            tr[0].frame_us = fr.num > 0 && fr.den > 0 && av_q2d(fr) <= 1000 ? 1e6 / av_q2d(fr) : 0;
            if (scan(j, fmt, tr, ntr, pkt) != 0)
                goto out;
            if (tr[1].in >= 0 && tr[1].learn != 0)
                PC_LOGW("probe", "video %s: nothing of audio stream %d decodes; publishing without audio", j->video_id, tr[1].in);
            else if (tr[1].late)
                PC_LOGI("probe", "video %s: audio stream %d starts in a later part", j->video_id, tr[1].in);
            if (tr[1].in < 0 || tr[1].learn != 0)
                ntr = 1;
            if (tr[1].reconfig) { /* it would be decoded with the first part's: the wrong pitch */
                pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable",
                            "the timestamps jump (recordings joined with a discontinuity) and the parts' AAC audio "
                            "changes its sample rate or channels, which the joined copy cannot carry; remux each part, "
                            "or the whole with continuous times, and upload that");
                goto out;
            }
            if (tr[0].n == 0) {
                pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable", "the video stream holds no frames");
                goto out;
            }
            if ((off = calloc(tr[0].n, sizeof(*off))) == NULL) {
                pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
                goto out;
            }
            merge_false_joins(j, &tr[0], ntr > 1 ? &tr[1] : NULL);
            pc_stitch_offsets(tr[0].parts, tr[0].n, tr[1].parts, ntr > 1 ? tr[1].n : 0, tr[0].frame_us, off);
            non_negative(tr, ntr, off);
            for (int i = 0; i < ntr; i++)
                for (size_t k = 0; k < tr[i].n && k < 8; k++) /* the first few: a file may have thousands */
                    PC_LOGI("probe", "video %s: %s part %zu: %.3f-%.3f s, moved %+.3f s", j->video_id, i ? "audio" : "video",
                            k, tr[i].parts[k].first / 1e6, tr[i].parts[k].end / 1e6, off[tr[i].parts[k].owner] / 1e6);
            avformat_close_input(&fmt);
            continue;
        }
        if (out_open(j, &o, "matroska", dst, fmt, tr, ntr, JOIN_REFUSED) != 0) /* a codec Matroska cannot carry (DVD LPCM) */
            goto out;
        if (ntr > 1 && (*joins = malloc((tr[1].n + 1) * sizeof(**joins))) == NULL) {
            pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
            goto out;
        }
        if (copy(j, fmt, &o, tr, ntr, pkt, off, joins, njoins) != 0 || out_finish(j, &o, dst) != 0)
            goto out;
        if (tr[0].lead_dropped > 0)
            PC_LOGI("probe", "video %s: %" PRId64 " video packets before a part's first keyframe were dropped", j->video_id,
                    tr[0].lead_dropped);
        if (ntr > 1 && tr[1].dropped > 0)
            PC_LOGI("probe", "video %s: %" PRId64 " audio packets overlapping the part before were dropped", j->video_id,
                    tr[1].dropped);
        ret = (int)tr[0].n;
    }
out:
    out_close(&o);
    if (fmt != NULL)
        avformat_close_input(&fmt);
    av_packet_free(&pkt);
    free(off);
    if (ret < 0) {
        free(*joins);
        *joins = NULL;
        *njoins = 0;
    }
    for (int i = 0; i < 2; i++) {
        free(tr[i].parts);
        free(tr[i].from);
        free(tr[i].keep_all);
        avcodec_free_context(&tr[i].dec);
        avcodec_parameters_free(&tr[i].par);
    }
    return ret;
}

int pc_copy_timed(pc_job *j, const char *src, int fmt_flags, int vidx, AVRational fps, const char *dst)
{
    struct track tr = {.in = vidx};
    AVFormatContext *fmt = NULL;
    struct out o = {0};
    AVPacket *pkt = av_packet_alloc();
    int ret = -1;
    if (pkt == NULL) {
        pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
        goto out;
    }
    if (open_src(j, src, fmt_flags, vidx, -1, &fmt) != 0 ||
        out_open(j, &o, "mp4", dst, fmt, &tr, 1, "the video stream cannot be put in MP4") != 0)
        goto out;
    AVRational tb = av_inv_q(fps); /* a frame is one tick */
    int64_t k = 0;
    for (;;) {
        int r = av_read_frame(fmt, pkt);
        if (r < 0) {
            if (r != AVERROR_EOF && pc_job_canceled(j)) {
                pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
                goto out;
            }
            break; /* as probe reads the file: up to a read error */
        }
        if (pkt->stream_index != vidx) {
            av_packet_unref(pkt);
            continue;
        }
        if (pkt->pts != AV_NOPTS_VALUE || pkt->dts != AV_NOPTS_VALUE) { /* not a raw stream: its times are not ours to make up */
            av_packet_unref(pkt);
            pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable", "some video packets carry no timestamps");
            goto out;
        }
        pkt->pts = pkt->dts = k++;
        pkt->duration = 1;
        pkt->stream_index = tr.out;
        pkt->pos = -1;
        av_packet_rescale_ts(pkt, tb, o.oc->streams[tr.out]->time_base);
        if (out_write(j, &o, pkt, "the video stream cannot be put in MP4") != 0)
            goto out;
        if ((k & 1023) == 0 && pc_job_canceled(j)) {
            pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
            goto out;
        }
    }
    if (k == 0) {
        pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable", "the video stream holds no frames");
        goto out;
    }
    if (out_finish(j, &o, dst) != 0)
        goto out;
    PC_LOGI("probe", "video %s: %" PRId64 " frames timed at %d/%d fps into %s", j->video_id, k, fps.num, fps.den, dst);
    ret = 0;
out:
    out_close(&o);
    if (fmt != NULL)
        avformat_close_input(&fmt);
    av_packet_free(&pkt);
    return ret;
}
