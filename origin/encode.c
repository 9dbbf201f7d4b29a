/*
 * encode: one chunk (a run of whole segments) of the video, every rung.
 *
 * The chunk's frames are decoded once, pushed through one filter graph
 * (rotation, then split into one scaler per rung) and encoded by one libx264
 * encoder per rung. IDRs are forced at the first frame of every 2-second
 * interval of output time and scene-cut keyframes are off, so every rung has
 * keyframes at the same timestamps, and segments (which start at such
 * keyframes) align across rungs and across chunks. Timestamps come from the
 * plan's timeline, so chunks encoded in parallel join seamlessly, and the
 * encoders of all chunks share one configuration, so their parameter sets
 * (and the init segments built from them) are identical; package checks it.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>

#include "av_util.h"
#include "cmaf.h"
#include "job.h"
#include "ladder.h"
#include "pc_json.h"
#include "pc_log.h"
#include "thumbs.h"

#define MAX_SEG_PACKETS 100000
/* A chunk may have at most one frame in this many that its decoder cannot give (each is replaced by a
 * copy of the frame before it); more, and the video fails as undecodable. */
#define CONCEAL_MAX_DIV 10

struct pkt {
    int64_t pts;
    int key;
    uint8_t *data; /* length-prefixed NAL units */
    size_t size;
};

struct rung_enc {
    pc_rung r;
    AVCodecContext *enc;
    AVFilterContext *sink;
    struct pkt *pkts; /* packets of the segment being collected */
    size_t npkts, cap;
    int seg;          /* index (global) of the segment being collected */
    int64_t last_out; /* pts of the last frame out of the graph, -1 before the first */
    char dir[4200];
    json_t *segs;
    pc_buf avcc;
    char codecs[32];
};

struct chunk {
    pc_job *j;
    json_t *plan;
    int64_t timescale, gop_ticks, end_ticks;
    int64_t b_ticks; /* how long after it is shown a B-frame decodes at most (decode_time), or 0 */
    int first_seg, nseg, total_segs;
    int64_t *seg_t;      /* start ticks of every segment of the video, plus end */
    int64_t *seg_frames; /* expected frame counts */
    struct rung_enc *rungs;
    int nrungs;
    AVFilterGraph *graph;
    AVFilterContext *src;
    pc_thumbs *thumbs; /* captures thumbnails from the top rung */
    int hdr;           /* a PQ or HLG source: tone-mapped to SDR BT.709 in the graph */
    int colour[3];     /* transfer, primaries, matrix as probed (H.273 values; 2 = unspecified) */
    int64_t *retime;   /* (packet pts, presentation pts) pairs by packet pts, or NULL: see probe.c */
    size_t nretime;
};

/* The tone mapping for a PQ or HLG source: an even size (zimg refuses odd 4:2:0 sizes, which VP9 and AV1
 * allow; the rungs are even anyway), to linear light (100 nits reference white), BT.709
 * primaries, Hable's curve, then BT.709 transfer and matrix in limited range, 8-bit 4:2:0. */
#define TONEMAP_CHAIN                                                                                   \
    "crop=trunc(iw/2)*2:trunc(ih/2)*2,"                                                                 \
    "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=tonemap=hable:desat=0,"           \
    "zscale=t=bt709:m=bt709:r=tv,format=yuv420p,"

static int is_hdr(enum AVColorTransferCharacteristic trc)
{
    return trc == AVCOL_TRC_SMPTE2084 || trc == AVCOL_TRC_ARIB_STD_B67;
}

static void free_pkts(struct rung_enc *re)
{
    for (size_t i = 0; i < re->npkts; i++)
        free(re->pkts[i].data);
    re->npkts = 0;
}

#define RECENT_PTS 32 /* how many frames back encode looks for a repeated time */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * Decode times. A segment's samples decode at its frames' presentation times in order (|sorted|),
 * so its first decodes at its start (tfdt) as in every rung, and each B-frame is shown a slot before
 * it decodes: a negative composition offset of one frame. Players built on libavformat shift every
 * presentation time by the most negative offset seen so far, which stays what the first segment
 * set only if no later B-frame's is more negative: at a variable frame rate a B-frame before a
 * longer frame would move the rest of the video later (31 ms after a 73 ms frame of a stitched
 * 24/29.97 fps file). So a B-frame that would decode more than |cap| (the plan's b_frame_ticks: the
 * first segment's usual frame interval) after it is shown decodes |cap| after it instead. That keeps
 * the decode times increasing when no sample is shown more than one slot before it decodes (no
 * B-pyramids; else they stay as they are). Returns the i-th sample's decode time.
 */
static int64_t decode_time(const struct rung_enc *re, const int64_t *sorted, size_t i, int64_t cap)
{
    int64_t pts = re->pkts[i].pts;
    if (i == 0 || cap <= 0 || pts + cap >= sorted[i])
        return sorted[i];
    return pts + cap;
}

static int one_slot_deep(const struct rung_enc *re, const int64_t *sorted, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (re->pkts[i].pts < sorted[i - 1])
            return 0;
    return 1;
}

/* Writes the collected packets of |re| as segment re->seg. */
static int flush_segment(struct chunk *c, struct rung_enc *re)
{
    pc_job *j = c->j;
    int s = re->seg;
    if (re->npkts == 0)
        return 0;
    if ((int64_t)re->npkts != c->seg_frames[s])
        return pc_job_fail(j, PC_EENCODE, 0, "encode_failed", "rung %s segment %d has %zu frames, expected %" PRId64,
                           re->r.id, s + 1, re->npkts, c->seg_frames[s]);
    size_t n = re->npkts;
    int64_t *sorted = malloc(n * sizeof(*sorted));
    pc_cmaf_sample *smp = malloc(n * sizeof(*smp));
    pc_buf data, out;
    pc_buf_init(&data, (size_t)256 << 20);
    pc_buf_init(&out, (size_t)256 << 20);
    int r = sorted != NULL && smp != NULL ? 0 : PC_ENOMEM;
    for (size_t i = 0; r == 0 && i < n; i++)
        sorted[i] = re->pkts[i].pts;
    if (r == 0)
        qsort(sorted, n, sizeof(*sorted), cmp_i64);
    int64_t next = c->seg_t[s + 1];
    int64_t cap = r == 0 && one_slot_deep(re, sorted, n) ? c->b_ticks : 0;
    for (size_t i = 0; r == 0 && i < n; i++) {
        int64_t dts = decode_time(re, sorted, i, cap);
        int64_t dur = (i + 1 < n ? decode_time(re, sorted, i + 1, cap) : next) - dts;
        smp[i].duration = (uint32_t)dur;
        smp[i].size = (uint32_t)re->pkts[i].size;
        smp[i].cto = (int32_t)(re->pkts[i].pts - dts);
        smp[i].sync = (uint8_t)re->pkts[i].key;
        r = pc_buf_append(&data, re->pkts[i].data, re->pkts[i].size);
    }
    if (r == 0 && (sorted[0] != c->seg_t[s] || !re->pkts[0].key))
        r = pc_job_fail(j, PC_EENCODE, 0, "encode_failed", "rung %s segment %d does not start with an IDR at its start time",
                        re->r.id, s + 1);
    if (r == 0)
        r = pc_cmaf_write_segment(&out, 1, (uint32_t)(s + 1), (uint64_t)sorted[0], smp, n, (const uint8_t *)data.data, data.len);
    char path[4300];
    snprintf(path, sizeof(path), "%s/seg-%05d.m4s", re->dir, s + 1);
    if (r == 0 && (r = pc_write_file(path, out.data, out.len)) != 0)
        pc_job_fail(j, r, 0, "io_error", "cannot write %s", path);
    if (r == 0)
        /* the last figure: bytes from the segment's start through its IDR, the first sample of the one mdat
         * (what an I-frame playlist's byte range names) */
        json_array_append_new(re->segs, json_pack("[i,I,I,I,I]", s + 1, (json_int_t)sorted[0], (json_int_t)(next - sorted[0]),
                                                  (json_int_t)out.len, (json_int_t)(out.len - data.len + re->pkts[0].size)));
    else if (j->err == 0)
        pc_job_fail(j, r, 0, "encode_failed", "cannot build segment %d of rung %s: %s", s + 1, re->r.id, pc_strerror(r));
    free(sorted);
    free(smp);
    pc_buf_clear(&data);
    pc_buf_clear(&out);
    free_pkts(re);
    return j->err;
}

/* Collects one encoded packet, writing finished segments. */
static int take_packet(struct chunk *c, struct rung_enc *re, AVPacket *p)
{
    while (re->seg + 1 < c->total_segs && p->pts >= c->seg_t[re->seg + 1]) {
        int r = flush_segment(c, re);
        if (r != 0)
            return r;
        re->seg++;
    }
    if (re->npkts == re->cap) {
        size_t cap = re->cap ? re->cap * 2 : 256;
        if (cap > MAX_SEG_PACKETS)
            return pc_job_fail(c->j, PC_EMEDIALIMIT, 1, "media_limit", "too many frames in one segment");
        struct pkt *np = realloc(re->pkts, cap * sizeof(*np));
        if (np == NULL)
            return pc_job_fail(c->j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
        re->pkts = np;
        re->cap = cap;
    }
    pc_buf lp;
    pc_buf_init(&lp, (size_t)64 << 20);
    if (pc_annexb_to_lp(p->data, (size_t)p->size, &lp) != 0 || lp.len == 0) {
        pc_buf_clear(&lp);
        return pc_job_fail(c->j, PC_EENCODE, 0, "encode_failed", "the encoder produced an unparsable packet");
    }
    struct pkt *k = &re->pkts[re->npkts++];
    k->pts = p->pts;
    k->key = (p->flags & AV_PKT_FLAG_KEY) != 0;
    k->data = (uint8_t *)pc_buf_steal(&lp, &k->size);
    return 0;
}

static int drain_encoder(struct chunk *c, struct rung_enc *re, AVPacket *p)
{
    for (;;) {
        int r = avcodec_receive_packet(re->enc, p);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF)
            return 0;
        if (r < 0)
            return pc_job_fail(c->j, PC_EENCODE, 0, "encode_failed", "x264 failed on rung %s", re->r.id);
        r = take_packet(c, re, p);
        av_packet_unref(p);
        if (r != 0)
            return r;
    }
}

/* Frames the graph has ready for rung |i| go to its encoder, an IDR at each GOP start of their own
 * timestamps (a deinterlacer holds a frame back, so the frame out is not always the frame just in). */
static int encode_ready(struct chunk *c, int i, AVFrame *f, AVPacket *p)
{
    struct rung_enc *re = &c->rungs[i];
    /* a deinterlacer counts time in halves of the graph's input units: back to the plan's */
    AVRational tb = av_buffersink_get_time_base(re->sink), want = {1, (int)c->timescale};
    for (;;) {
        int g = av_buffersink_get_frame(re->sink, f);
        if (g == AVERROR(EAGAIN) || g == AVERROR_EOF)
            break;
        if (g < 0) { /* a filter failed (the deinterlacer, the tone mapping): never a chunk with holes */
            char eb[128];
            return pc_job_fail(c->j, PC_EENCODE, 0, "encode_failed", "the filter graph failed on rung %s (%s)", re->r.id,
                               pc_av_err(g, eb, sizeof(eb)));
        }
        if (av_cmp_q(tb, want) != 0)
            f->pts = av_rescale_q(f->pts, tb, want);
        f->pict_type = pc_is_gop_start(re->last_out, f->pts, c->gop_ticks) ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
        re->last_out = f->pts;
        if (i == c->nrungs - 1 && c->thumbs != NULL && pc_thumbs_offer(c->thumbs, f, f->pts) != 0) {
            av_frame_unref(f);
            return c->j->err;
        }
        int r = avcodec_send_frame(re->enc, f);
        av_frame_unref(f);
        if (r < 0)
            return pc_job_fail(c->j, PC_EENCODE, 0, "encode_failed", "x264 refused a frame on rung %s", re->r.id);
        if ((r = drain_encoder(c, re, p)) != 0)
            return r;
    }
    return 0;
}

/* End of chunk: drains the graph and the encoders and writes the last segments. */
static int flush_all(struct chunk *c, AVFrame *f, AVPacket *p)
{
    if (av_buffersrc_add_frame(c->src, NULL) < 0)
        return pc_job_fail(c->j, PC_EENCODE, 0, "encode_failed", "cannot flush the scaler");
    for (int i = 0; i < c->nrungs; i++) {
        struct rung_enc *re = &c->rungs[i];
        int rr = encode_ready(c, i, f, p);
        if (rr != 0)
            return rr;
        avcodec_send_frame(re->enc, NULL);
        int r = drain_encoder(c, re, p);
        if (r == 0)
            r = flush_segment(c, re);
        if (r != 0)
            return r;
    }
    return 0;
}

static int open_encoder(struct chunk *c, struct rung_enc *re, AVRational fps, int gop_frames)
{
    const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
    if (codec == NULL)
        return pc_job_fail(c->j, PC_EENCODE, 0, "encode_failed", "FFmpeg lacks libx264");
    AVCodecContext *e = avcodec_alloc_context3(codec);
    if (e == NULL)
        return pc_job_fail(c->j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
    e->width = re->r.width;
    e->height = re->r.height;
    e->pix_fmt = AV_PIX_FMT_YUV420P;
    e->time_base = (AVRational){1, (int)c->timescale};
    e->framerate = fps;
    e->sample_aspect_ratio = (AVRational){1, 1};
    e->bit_rate = c->j->env->crf > 0 ? 0 : re->r.bitrate;
    e->rc_max_rate = re->r.maxrate;
    e->rc_buffer_size = re->r.bufsize;
    e->gop_size = gop_frames * 8; /* never reached: IDRs are forced every 2 s */
    e->keyint_min = gop_frames;
    e->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    e->thread_count = c->j->env->x264_threads;
    e->color_range = AVCOL_RANGE_MPEG;
    if (c->hdr) { /* what the tone mapping made, said in the SPS */
        e->color_primaries = AVCOL_PRI_BT709;
        e->color_trc = AVCOL_TRC_BT709;
        e->colorspace = AVCOL_SPC_BT709;
    } else {
        /* the source's colour, said in the SPS: scaling passes its samples through unconverted, so they
         * mean what the source's meant. Untagged, each player guessed (ffmpeg BT.601, browsers BT.709),
         * and a BT.709 green came out 42,214,63 instead of 29,188,59 (found by review). An RGB source
         * (matrix 0) is converted to YUV by the scaler, whose matrix is not the source's: left unsaid. */
        enum AVColorPrimaries pri = (enum AVColorPrimaries)c->colour[1];
        enum AVColorTransferCharacteristic trc = (enum AVColorTransferCharacteristic)c->colour[0];
        enum AVColorSpace spc = (enum AVColorSpace)c->colour[2];
        if (av_color_primaries_name(pri) != NULL && pri != AVCOL_PRI_UNSPECIFIED && pri != AVCOL_PRI_RESERVED0 &&
            pri != AVCOL_PRI_RESERVED)
            e->color_primaries = pri;
        if (av_color_transfer_name(trc) != NULL && trc != AVCOL_TRC_UNSPECIFIED && trc != AVCOL_TRC_RESERVED0 &&
            trc != AVCOL_TRC_RESERVED)
            e->color_trc = trc;
        if (av_color_space_name(spc) != NULL && spc != AVCOL_SPC_UNSPECIFIED && spc != AVCOL_SPC_RGB &&
            spc != AVCOL_SPC_RESERVED)
            e->colorspace = spc;
    }
    AVDictionary *o = NULL;
    av_dict_set(&o, "preset", c->j->env->preset, 0);
    if (c->j->env->crf > 0) {
        char crf[16];
        snprintf(crf, sizeof(crf), "%.1f", c->j->env->crf);
        av_dict_set(&o, "crf", crf, 0);
    }
    av_dict_set(&o, "profile", "high", 0);
    av_dict_set(&o, "forced-idr", "1", 0);
    av_dict_set(&o, "x264-params", "scenecut=0:open-gop=0:b-pyramid=none", 0);
    int r = avcodec_open2(e, codec, &o);
    av_dict_free(&o);
    if (r < 0) {
        avcodec_free_context(&e);
        char eb[128];
        if (pc_av_err_transient(r)) /* out of memory, or a thread that could not start: again later */
            return pc_job_fail(c->j, PC_ENOMEM, 0, "out_of_memory", "cannot open x264 for %dx%d (%s)", re->r.width,
                               re->r.height, pc_av_err(r, eb, sizeof(eb)));
        return pc_job_fail(c->j, PC_EENCODE, 1, "encode_failed", "cannot open x264 for %dx%d (%s)", re->r.width,
                           re->r.height, pc_av_err(r, eb, sizeof(eb)));
    }
    re->enc = e;
    if (pc_avcc_from_annexb(e->extradata, (size_t)e->extradata_size, &re->avcc, re->codecs) != 0)
        return pc_job_fail(c->j, PC_EENCODE, 0, "encode_failed", "x264 produced no parameter sets");
    return 0;
}

/* Whether the source says it is interlaced (coded as fields or field pairs, either order). */
static int is_interlaced(enum AVFieldOrder fo)
{
    return fo == AV_FIELD_TT || fo == AV_FIELD_BB || fo == AV_FIELD_TB || fo == AV_FIELD_BT;
}

static int build_graph(struct chunk *c, const AVCodecContext *dec, int rotation)
{
    c->graph = avfilter_graph_alloc();
    if (c->graph == NULL)
        return AVERROR(ENOMEM);
    c->graph->nb_threads = 1;
    char args[256];
    AVRational sar = dec->sample_aspect_ratio.num > 0 ? dec->sample_aspect_ratio : (AVRational){1, 1};
    snprintf(args, sizeof(args), "video_size=%dx%d:pix_fmt=%d:time_base=1/%" PRId64 ":pixel_aspect=%d/%d", dec->width,
             dec->height, dec->pix_fmt, c->timescale, sar.num, sar.den);
    int r = avfilter_graph_create_filter(&c->src, avfilter_get_by_name("buffer"), "in", args, NULL, c->graph);
    if (r < 0)
        return r;
    pc_buf desc;
    pc_buf_init(&desc, 16384);
    /* every rung scales from the full-size frame: cascading small rungs from an intermediate one saves
     * about 6% of the CPU but measured 2-3 dB worse on the smallest rung (bench/transcode.py) */
    const char *rot = rotation == 90 ? "transpose=clock," : rotation == 180 ? "hflip,vflip," : rotation == 270 ? "transpose=cclock," : "";
    /* an interlaced source is deinterlaced first (bwdif, one frame per frame: the frame rate and the
     * plan's frame counts stay; only frames flagged interlaced are touched) */
    const char *deint = is_interlaced(dec->field_order) ? "bwdif=mode=send_frame:parity=auto:deint=interlaced," : "";
    r = pc_buf_printf(&desc, "[in]%s%s%ssplit=%d", deint, c->hdr ? TONEMAP_CHAIN : "", rot, c->nrungs);
    for (int i = 0; r == 0 && i < c->nrungs; i++)
        r = pc_buf_printf(&desc, "[s%d]", i);
    for (int i = 0; r == 0 && i < c->nrungs; i++)
        r = pc_buf_printf(&desc, ";[s%d]scale=%d:%d:flags=bicubic,format=yuv420p,setsar=1[out%d]", i,
                          c->rungs[i].r.width, c->rungs[i].r.height, i);
    AVFilterInOut *outputs = avfilter_inout_alloc(), *inputs = NULL;
    if (r != 0 || outputs == NULL) {
        pc_buf_clear(&desc);
        avfilter_inout_free(&outputs);
        return AVERROR(ENOMEM);
    }
    outputs->name = av_strdup("in");
    outputs->filter_ctx = c->src;
    outputs->pad_idx = 0;
    outputs->next = NULL;
    for (int i = c->nrungs - 1; i >= 0; i--) {
        char name[16];
        snprintf(name, sizeof(name), "out%d", i);
        r = avfilter_graph_create_filter(&c->rungs[i].sink, avfilter_get_by_name("buffersink"), name, NULL, NULL, c->graph);
        if (r < 0)
            break;
        AVFilterInOut *io = avfilter_inout_alloc();
        if (io == NULL) {
            r = AVERROR(ENOMEM);
            break;
        }
        io->name = av_strdup(name);
        io->filter_ctx = c->rungs[i].sink;
        io->pad_idx = 0;
        io->next = inputs;
        inputs = io;
    }
    if (r >= 0)
        r = avfilter_graph_parse_ptr(c->graph, desc.data, &inputs, &outputs, NULL);
    if (r >= 0)
        r = avfilter_graph_config(c->graph, NULL);
    avfilter_inout_free(&inputs);
    avfilter_inout_free(&outputs);
    pc_buf_clear(&desc);
    return r;
}

/* Sends |frame| (shown at |t|; the graph takes a reference of its own) through the scaler and encoders. */
static int encode_frame(struct chunk *c, AVFrame *frame, AVFrame *ff, AVPacket *opkt)
{
    if (av_buffersrc_add_frame_flags(c->src, frame, AV_BUFFERSRC_FLAG_KEEP_REF) < 0)
        return pc_job_fail(c->j, PC_EENCODE, 0, "encode_failed", "the scaler refused a frame");
    for (int i = 0; i < c->nrungs; i++)
        if (encode_ready(c, i, ff, opkt) != 0)
            return c->j->err;
    return 0;
}

/* Shows |src| once more, at |t|, in place of a frame the decoder did not give (its own time is kept). */
static int encode_copy(struct chunk *c, AVFrame *src, int64_t t, AVFrame *ff, AVPacket *opkt)
{
    int64_t own = src->pts;
    src->pts = t;
    int r = encode_frame(c, src, ff, opkt);
    src->pts = own;
    return r;
}

/* The output times of this chunk's frames, as the plan counted them from the probe's frame index
 * (frames.bin): where a frame the decoder does not give belongs. NULL with |*n| 0 when the index cannot
 * be read or disagrees with the plan's count (nothing is then replaced). */
static int64_t *chunk_ticks(pc_job *j, const pc_timeline *tl, int64_t start_t, int64_t end_t, int64_t expected, size_t *n)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/frames.bin", j->work_dir);
    int64_t *pts = NULL, *ticks = NULL;
    size_t nf = 0, lo = 0, hi = 0;
    *n = 0;
    if (pc_frames_read(path, &pts, &nf) != 0 || nf == 0 || (ticks = malloc(nf * sizeof(*ticks))) == NULL) {
        free(pts);
        return NULL;
    }
    size_t kept = pc_timeline_ticks(tl, pts, nf, ticks);
    free(pts);
    while (lo < kept && ticks[lo] < start_t)
        lo++;
    for (hi = lo; hi < kept && ticks[hi] < end_t; hi++)
        ;
    if ((int64_t)(hi - lo) != expected) {
        PC_LOGW("encode", "video %s chunk %d: the frame index lists %zu frames, the plan %" PRId64 "; no frame replaced",
                j->video_id, j->arg, hi - lo, expected);
        free(ticks);
        return NULL;
    }
    memmove(ticks, ticks + lo, (hi - lo) * sizeof(*ticks));
    *n = hi - lo;
    return ticks;
}

int pc_task_encode(pc_job *j)
{
    struct chunk c;
    memset(&c, 0, sizeof(c));
    c.j = j;
    c.plan = json_loads(j->plan != NULL ? j->plan : "", 0, NULL);
    if (c.plan == NULL)
        return pc_job_fail(j, PC_EINTERNAL, 1, "internal_error", "the plan is missing");
    AVFormatContext *fmt = NULL;
    AVCodecContext *dec = NULL;
    AVPacket *pkt = av_packet_alloc(), *opkt = av_packet_alloc();
    AVFrame *frame = av_frame_alloc(), *ff = av_frame_alloc(), *held = av_frame_alloc();
    int64_t *xt = NULL; /* the chunk's frame times (chunk_ticks) */
    size_t nxt = 0, xi = 0;
    int64_t concealed = 0;
    char eb[128];
    json_t *chunk = json_array_get(json_object_get(c.plan, "chunks"), (size_t)j->arg);
    json_t *segs = json_object_get(c.plan, "segments");
    json_t *rungs = json_object_get(c.plan, "rungs");
    if (chunk == NULL || pkt == NULL || opkt == NULL || frame == NULL || ff == NULL || held == NULL) {
        pc_job_fail(j, PC_EINTERNAL, 1, "internal_error", "chunk %d is not in the plan", j->arg);
        goto out;
    }
    c.timescale = pc_json_int(c.plan, "timescale", 90000);
    c.gop_ticks = (int64_t)llround(pc_json_num(c.plan, "gop_duration", 2) * (double)c.timescale);
    c.end_ticks = pc_json_int(c.plan, "end", 0);
    c.first_seg = (int)pc_json_int(chunk, "first_segment", 0);
    c.nseg = (int)pc_json_int(chunk, "segments", 0);
    c.total_segs = (int)json_array_size(segs);
    c.seg_t = calloc((size_t)c.total_segs + 1, sizeof(int64_t));
    c.seg_frames = calloc((size_t)c.total_segs + 1, sizeof(int64_t));
    c.nrungs = (int)json_array_size(rungs);
    c.rungs = calloc((size_t)c.nrungs, sizeof(*c.rungs));
    if (c.seg_t == NULL || c.seg_frames == NULL || c.rungs == NULL) {
        pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
        goto out;
    }
    for (int i = 0; i < c.total_segs; i++) {
        c.seg_t[i] = json_integer_value(json_array_get(json_array_get(segs, (size_t)i), 0));
        c.seg_frames[i] = json_integer_value(json_array_get(json_array_get(segs, (size_t)i), 2));
    }
    c.seg_t[c.total_segs] = c.end_ticks;
    int last_seg = c.first_seg + c.nseg; /* exclusive */
    int64_t start_t = c.seg_t[c.first_seg], end_t = c.seg_t[last_seg];
    int64_t start_pts = json_integer_value(json_array_get(json_array_get(segs, (size_t)c.first_seg), 1));
    int64_t expected = 0;
    for (int s = c.first_seg; s < last_seg; s++)
        expected += c.seg_frames[s];
    json_t *fr = json_object_get(c.plan, "frame_rate"), *tb = json_object_get(c.plan, "time_base");
    AVRational fps = {(int)json_integer_value(json_array_get(fr, 0)), (int)json_integer_value(json_array_get(fr, 1))};
    /* above 60 fps the timeline counts the source's frames and every decim-th is kept */
    json_t *sfr = json_object_get(c.plan, "source_frame_rate");
    int decim = (int)pc_json_int(c.plan, "decimate", 1);
    AVRational src_fps = json_is_array(sfr) ? (AVRational){(int)json_integer_value(json_array_get(sfr, 0)),
                                                           (int)json_integer_value(json_array_get(sfr, 1))}
                                            : fps;
    pc_timeline tl;
    pc_timeline_init(&tl, json_is_true(json_object_get(c.plan, "cfr")), pc_json_int(c.plan, "first_pts", 0),
                     (int)json_integer_value(json_array_get(tb, 0)), (int)json_integer_value(json_array_get(tb, 1)),
                     src_fps.num, src_fps.den);
    if (decim < 1 || src_fps.num <= 0 || src_fps.den <= 0 || (decim > 1 && tl.frame_ticks <= 0)) {
        pc_job_fail(j, PC_EINTERNAL, 1, "internal_error", "the plan's frame rate is invalid");
        goto out;
    }
    tl.decim = decim;
    xt = chunk_ticks(j, &tl, start_t, end_t, expected, &nxt);
    int gop_frames = (int)lround(av_q2d(fps) * pc_json_num(c.plan, "gop_duration", 2));
    c.b_ticks = pc_json_int(c.plan, "b_frame_ticks", 0); /* older plans: the nominal frame */
    if (c.b_ticks <= 0)
        c.b_ticks = fps.num > 0 && fps.den > 0 ? (int64_t)llround((double)c.timescale * fps.den / fps.num) : 0;
    if (gop_frames < 1)
        gop_frames = 1;

    int r = pc_av_open_source(j, c.plan, &fmt);
    if (r < 0 || avformat_find_stream_info(fmt, NULL) < 0) {
        pc_job_fail(j, PC_EIO, 0, "io_error", "cannot open the source (%s)", pc_av_err(r, eb, sizeof(eb)));
        goto out;
    }
    int vidx = (int)pc_json_int(c.plan, "video_index", 0);
    if (vidx < 0 || vidx >= (int)fmt->nb_streams || (r = pc_av_open_decoder(fmt, vidx, 1, &dec)) < 0) {
        if (vidx >= 0 && vidx < (int)fmt->nb_streams && pc_av_err_transient(r)) /* out of memory: again later */
            pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "cannot open the video decoder (%s)", pc_av_err(r, eb, sizeof(eb)));
        else
            pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable", "cannot decode the video stream");
        goto out;
    }
    /* the colour as probed (the first frame's, else the stream's, else the container's); plans made
     * before probing recorded it: the decoder's */
    json_t *col = json_object_get(c.plan, "colour");
    const int decoder_says[3] = {(int)dec->color_trc, (int)dec->color_primaries, (int)dec->colorspace};
    for (size_t k = 0; k < 3; k++)
        c.colour[k] = json_is_array(col) ? (int)json_integer_value(json_array_get(col, k)) : decoder_says[k];
    c.hdr = is_hdr((enum AVColorTransferCharacteristic)c.colour[0]);
    for (int i = 0; i < c.nrungs; i++) {
        struct rung_enc *re = &c.rungs[i];
        json_t *jr = json_array_get(rungs, (size_t)i);
        snprintf(re->r.id, sizeof(re->r.id), "%s", json_string_value(json_object_get(jr, "id")));
        re->r.width = (int)pc_json_int(jr, "width", 0);
        re->r.height = (int)pc_json_int(jr, "height", 0);
        re->r.bitrate = (int)pc_json_int(jr, "bitrate", 0);
        re->r.maxrate = (int)pc_json_int(jr, "maxrate", 0);
        re->r.bufsize = (int)pc_json_int(jr, "bufsize", 0);
        re->seg = c.first_seg;
        re->last_out = -1;
        re->segs = json_array();
        pc_buf_init(&re->avcc, 8192);
        snprintf(re->dir, sizeof(re->dir), "%s/%s", j->out_dir, re->r.id);
        if ((r = pc_mkdirs(re->dir)) != 0) {
            pc_job_fail(j, r, 0, "io_error", "cannot create %s", re->dir);
            goto out;
        }
        if (open_encoder(&c, re, fps, gop_frames) != 0)
            goto out;
    }
    if ((r = build_graph(&c, dec, (int)pc_json_int(c.plan, "rotation", 0))) < 0) {
        pc_job_fail(j, PC_EENCODE, 0, "encode_failed", "cannot build the scaling graph (%s)", pc_av_err(r, eb, sizeof(eb)));
        goto out;
    }
    /* a source whose timestamps are decode order: each frame's time from the probe's frame order */
    int retime = json_is_true(json_object_get(c.plan, "retime"));
    if (retime) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/retime.bin", j->work_dir);
        if ((r = pc_frames_read(path, &c.retime, &c.nretime)) != 0) {
            pc_job_fail(j, r, 0, "io_error", "cannot read the frame order");
            goto out;
        }
        if (c.nretime % 2 != 0) {
            pc_job_fail(j, PC_EPARSE, 1, "internal_error", "the frame order is corrupt");
            goto out;
        }
        c.nretime /= 2;
    }
    c.thumbs = pc_thumbs_new(j, c.plan, start_t, end_t);
    /* seek to the keyframe at or before the chunk and decode from a keyframe (a timestamp search, as
     * in MPEG-TS, lands mid-GOP); retry further back if that keyframe is after the chunk's start */
    int64_t seek_to = start_pts;
    int reseeks = 0;
    /* waiting for a keyframe past the chunk's end means this seek landed too late (or the packets
     * carry no keyframe flags): give up there rather than read to the end of the file */
    pc_feed feed = {.wait_until = pc_timeline_unmap(&tl, end_t)};
seek:
    feed.mode = retime ? PC_FEED_DECODE_ORDER : 0;
    if (c.first_seg > 0 || reseeks > 0) {
        if (av_seek_frame(fmt, vidx, seek_to, AVSEEK_FLAG_BACKWARD) < 0 && av_seek_frame(fmt, vidx, seek_to, AVSEEK_FLAG_ANY | AVSEEK_FLAG_BACKWARD) < 0) {
            avformat_seek_file(fmt, -1, INT64_MIN, 0, 0, 0);
            seek_to = INT64_MIN;
        }
        avcodec_flush_buffers(dec);
        if (seek_to != INT64_MIN) /* from the file's start any frame may come first */
            feed.mode |= PC_FEED_WAIT_KEY;
    }
    int64_t last_t = -1, done = 0;
    /* the last frames' times: a frame at a time already shown is dropped, as probe counts distinct
     * times (a file joined with -c copy can repeat one a few frames apart, across the reordering) */
    int64_t recent[RECENT_PTS];
    size_t nrecent = 0;
    int first = 1, finished = 0, eof = 0;
    while (!finished) {
        if (pc_job_canceled(j)) {
            pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
            goto out;
        }
        pc_av_feed(fmt, dec, vidx, pkt, &eof, &feed);
        if (feed.mode & PC_FEED_KEY_MISSED)
            break; /* first is still set: seek further back */
        for (;;) {
            r = avcodec_receive_frame(dec, frame);
            if (r == AVERROR(EAGAIN))
                break;
            if (r < 0) {
                finished = 1; /* decoder drained */
                break;
            }
            int64_t pts = frame->best_effort_timestamp;
            if (retime) {
                const int64_t *e = frame->pts == AV_NOPTS_VALUE ? NULL
                                   : bsearch(&frame->pts, c.retime, c.nretime, 2 * sizeof(*c.retime), cmp_i64);
                pts = e != NULL ? e[1] : AV_NOPTS_VALUE;
            }
            int seen = 0;
            for (size_t k = 0; k < nrecent && k < RECENT_PTS; k++)
                seen |= recent[k] == pts;
            if (pts == AV_NOPTS_VALUE || seen) {
                av_frame_unref(frame);
                continue;
            }
            recent[nrecent++ % RECENT_PTS] = pts;
            int64_t t = pc_timeline_map(&tl, pts);
            if (first && t > start_t && c.first_seg > 0) {
                av_frame_unref(frame); /* overshot: below */
                finished = 1;
                break;
            }
            first = 0;
            if (t < start_t || !pc_timeline_keeps(&tl, t)) {
                av_frame_unref(frame);
                continue;
            }
            if (last_t >= 0 && t <= last_t)
                t = last_t + 1;
            if (t >= end_t) {
                av_frame_unref(frame);
                finished = 1;
                break;
            }
            last_t = t;
            frame->pts = t;
            if (c.hdr) { /* the tone mapping reads the frame's colour: the probed one where a frame has none */
                if (frame->color_trc == AVCOL_TRC_UNSPECIFIED)
                    frame->color_trc = (enum AVColorTransferCharacteristic)c.colour[0];
                if (frame->color_primaries == AVCOL_PRI_UNSPECIFIED)
                    frame->color_primaries = c.colour[1] != AVCOL_PRI_UNSPECIFIED ? (enum AVColorPrimaries)c.colour[1]
                                                                                  : AVCOL_PRI_BT2020;
                if (frame->colorspace == AVCOL_SPC_UNSPECIFIED)
                    frame->colorspace = c.colour[2] != AVCOL_SPC_UNSPECIFIED ? (enum AVColorSpace)c.colour[2]
                                                                             : AVCOL_SPC_BT2020_NCL;
                if (frame->color_range == AVCOL_RANGE_UNSPECIFIED)
                    frame->color_range = AVCOL_RANGE_MPEG;
            }
            frame->pict_type = AV_PICTURE_TYPE_NONE;
            /* frames listed before this one that the decoder did not give (corrupt slice headers, a lost
             * packet): each is shown as a copy of the frame before it, at its own time, so every rung still
             * has the planned frames; at the chunk's start, of this frame */
            for (; xi < nxt && xt[xi] < t; xi++, concealed++, done++)
                if (encode_copy(&c, held->buf[0] != NULL ? held : frame, xt[xi], ff, opkt) != 0)
                    goto out;
            if (xi < nxt && xt[xi] == t)
                xi++;
            r = encode_frame(&c, frame, ff, opkt);
            av_frame_unref(held);
            av_frame_move_ref(held, frame);
            if (r != 0)
                goto out;
            done++;
            if ((done & 15) == 0)
                atomic_store(&j->progress, (int)(950 * done / (expected > 0 ? expected : 1)));
        }
    }
    if (eof == PC_FEED_READ_ERROR) {
        pc_job_fail(j, PC_EIO, 0, "io_error", "cannot read the source");
        goto out;
    }
    if (first && c.first_seg > 0) { /* the first frame was after the chunk's start, or none came */
        if (++reseeks > 3) {
            pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable", "cannot seek to %.3f s in the source",
                        (double)start_t / (double)c.timescale);
            goto out;
        }
        seek_to = reseeks == 3 ? INT64_MIN : pc_timeline_unmap(&tl, start_t - (int64_t)reseeks * 10 * c.timescale);
        goto seek;
    }
    for (; xi < nxt && held->buf[0] != NULL; xi++, concealed++, done++) /* the chunk's last frames did not decode */
        if (encode_copy(&c, held, xt[xi], ff, opkt) != 0)
            goto out;
    if (concealed * CONCEAL_MAX_DIV > expected) {
        pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable",
                    "chunk %d: %" PRId64 " of its %" PRId64 " frames cannot be decoded (at most 1 in %d is replaced)", j->arg,
                    concealed, expected, CONCEAL_MAX_DIV);
        goto out;
    }
    if (done != expected) {
        pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable", "chunk %d decoded %" PRId64 " frames, expected %" PRId64, j->arg,
                    done, expected);
        goto out;
    }
    if (concealed > 0)
        PC_LOGW("encode", "video %s chunk %d: %" PRId64 " of %" PRId64 " frames could not be decoded; each shows the frame before it",
                j->video_id, j->arg, concealed, expected);
    if (flush_all(&c, ff, opkt) != 0)
        goto out;
    int with_frames = 0; /* every segment of the chunk that has frames was written, in every rung */
    for (int sg = c.first_seg; sg < last_seg; sg++)
        with_frames += c.seg_frames[sg] > 0;
    for (int i = 0; i < c.nrungs; i++)
        if ((int)json_array_size(c.rungs[i].segs) != with_frames) {
            pc_job_fail(j, PC_EENCODE, 0, "encode_failed", "rung %s wrote %zu of the chunk's %d segments", c.rungs[i].r.id,
                        json_array_size(c.rungs[i].segs), with_frames);
            goto out;
        }
    json_t *res = json_object();
    json_object_set_new(res, "chunk", json_integer(j->arg));
    json_object_set_new(res, "concealed", json_integer((json_int_t)concealed));
    json_t *jrs = json_object();
    for (int i = 0; i < c.nrungs; i++) {
        struct rung_enc *re = &c.rungs[i];
        char b64[8192];
        if (pc_b64_encoded_len(re->avcc.len, 0) > sizeof(b64)) {
            json_decref(res);
            json_decref(jrs);
            pc_job_fail(j, PC_EENCODE, 0, "encode_failed", "oversized parameter sets");
            goto out;
        }
        pc_b64_encode((const uint8_t *)re->avcc.data, re->avcc.len, b64, 0);
        json_object_set_new(jrs, re->r.id, json_pack("{s:s, s:s, s:O}", "avcc", b64, "codecs", re->codecs, "segments", re->segs));
    }
    json_object_set_new(res, "rungs", jrs);
    json_t *th = NULL;
    if (c.thumbs != NULL && pc_thumbs_finish(c.thumbs, &th) != 0) {
        json_decref(res);
        goto out;
    }
    if (th != NULL)
        json_object_set_new(res, "thumbs", th);
    j->result = pc_json_dump(res);
    json_decref(res);
    atomic_store(&j->progress, 1000);
out:
    for (int i = 0; c.rungs != NULL && i < c.nrungs; i++) {
        free_pkts(&c.rungs[i]);
        free(c.rungs[i].pkts);
        avcodec_free_context(&c.rungs[i].enc);
        json_decref(c.rungs[i].segs);
        pc_buf_clear(&c.rungs[i].avcc);
    }
    free(c.rungs);
    pc_thumbs_free(c.thumbs);
    free(c.retime);
    free(c.seg_t);
    free(c.seg_frames);
    avfilter_graph_free(&c.graph);
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
    av_packet_free(&pkt);
    av_packet_free(&opkt);
    av_frame_free(&frame);
    av_frame_free(&ff);
    av_frame_free(&held);
    free(xt);
    json_decref(c.plan);
    return j->err;
}
