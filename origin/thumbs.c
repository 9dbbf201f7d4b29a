/*
 * thumbs: poster frames cropped to 16:9 (up to 1280x720) and 2:3 (up to
 * 480x720), and a scrubbing sprite: one 160-pixel-wide tile every
 * |interval| seconds (at most 100 tiles per sheet, 10 columns) with a WebVTT
 * index (sprite.vtt, "sprite-0.webp#xywh=x,y,w,h" cues). All WebP, encoded
 * with libavcodec's libwebp encoder. The poster is the most detailed of five
 * candidate frames (highest luma variance), so it is rarely a black fade.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libswscale/swscale.h>

#include "av_util.h"
#include "job.h"
#include "ladder.h"
#include "pc_buf.h"
#include "pc_json.h"
#include "pc_log.h"

#define TILE_W 160
#define COLS 10
#define ROWS 10
#define MAX_TILES 1000

struct th {
    pc_job *j;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVFilterGraph *graph;
    AVFilterContext *src, *sink;
    int vidx;
    pc_timeline tl;
    int base_w, base_h;
    AVPacket *pkt;
    AVFrame *frame;
};

static int even(double v)
{
    int i = (int)lround(v / 2) * 2;
    return i < 2 ? 2 : i;
}

static int build(struct th *t, int rotation)
{
    t->graph = avfilter_graph_alloc();
    if (t->graph == NULL)
        return AVERROR(ENOMEM);
    t->graph->nb_threads = 1;
    AVRational sar = t->dec->sample_aspect_ratio.num > 0 ? t->dec->sample_aspect_ratio : (AVRational){1, 1};
    char args[256], desc[256];
    snprintf(args, sizeof(args), "video_size=%dx%d:pix_fmt=%d:time_base=1/%d:pixel_aspect=%d/%d", t->dec->width,
             t->dec->height, t->dec->pix_fmt, (int)t->tl.timescale, sar.num, sar.den);
    const char *rot = rotation == 90 ? "transpose=clock," : rotation == 180 ? "hflip,vflip," : rotation == 270 ? "transpose=cclock," : "";
    snprintf(desc, sizeof(desc), "%sscale=%d:%d:flags=bicubic,format=yuv420p,setsar=1", rot, t->base_w, t->base_h);
    int r = avfilter_graph_create_filter(&t->src, avfilter_get_by_name("buffer"), "in", args, NULL, t->graph);
    if (r >= 0)
        r = avfilter_graph_create_filter(&t->sink, avfilter_get_by_name("buffersink"), "out", NULL, NULL, t->graph);
    if (r < 0)
        return r;
    AVFilterInOut *outputs = avfilter_inout_alloc(), *inputs = avfilter_inout_alloc();
    if (outputs == NULL || inputs == NULL) {
        avfilter_inout_free(&outputs);
        avfilter_inout_free(&inputs);
        return AVERROR(ENOMEM);
    }
    outputs->name = av_strdup("in");
    outputs->filter_ctx = t->src;
    inputs->name = av_strdup("out");
    inputs->filter_ctx = t->sink;
    r = avfilter_graph_parse_ptr(t->graph, desc, &inputs, &outputs, NULL);
    if (r >= 0)
        r = avfilter_graph_config(t->graph, NULL);
    avfilter_inout_free(&outputs);
    avfilter_inout_free(&inputs);
    return r;
}

/* Decodes the first frame at or after |sec| and returns it scaled to the base size (caller frees). */
static AVFrame *frame_at(struct th *t, double sec)
{
    int64_t ticks = (int64_t)llround(sec * (double)t->tl.timescale);
    int64_t target = pc_timeline_unmap(&t->tl, ticks);
    if (av_seek_frame(t->fmt, t->vidx, target, AVSEEK_FLAG_BACKWARD) < 0)
        avformat_seek_file(t->fmt, -1, INT64_MIN, 0, 0, 0);
    avcodec_flush_buffers(t->dec);
    int eof = 0;
    AVFrame *got = NULL, *last = NULL;
    while (got == NULL && !pc_job_canceled(t->j)) {
        if (!eof) {
            int r = av_read_frame(t->fmt, t->pkt);
            if (r < 0) {
                eof = 1;
                avcodec_send_packet(t->dec, NULL);
            } else {
                if (t->pkt->stream_index == t->vidx)
                    avcodec_send_packet(t->dec, t->pkt);
                av_packet_unref(t->pkt);
            }
        }
        int r;
        while ((r = avcodec_receive_frame(t->dec, t->frame)) == 0) {
            int64_t pts = t->frame->best_effort_timestamp;
            av_frame_free(&last);
            last = av_frame_clone(t->frame);
            av_frame_unref(t->frame);
            if (pts != AV_NOPTS_VALUE && pc_timeline_map(&t->tl, pts) >= ticks) {
                got = last;
                last = NULL;
                break;
            }
        }
        if (r == AVERROR_EOF || (eof && r != 0 && got == NULL)) {
            got = last; /* past the end: the last frame */
            last = NULL;
            break;
        }
    }
    av_frame_free(&last);
    if (got == NULL)
        return NULL;
    got->pts = 0;
    AVFrame *out = av_frame_alloc();
    if (out == NULL || av_buffersrc_add_frame(t->src, got) < 0 || av_buffersink_get_frame(t->sink, out) < 0) {
        av_frame_free(&out);
        av_frame_free(&got);
        return NULL;
    }
    av_frame_free(&got);
    return out;
}

/* Scales the (x,y,w,h) region of |src| (yuv420p, even coordinates) into |dst| at (dx,dy) sized dw x dh. */
static int blit(const AVFrame *src, int x, int y, int w, int h, AVFrame *dst, int dx, int dy, int dw, int dh)
{
    struct SwsContext *sws = sws_getContext(w, h, AV_PIX_FMT_YUV420P, dw, dh, AV_PIX_FMT_YUV420P, SWS_BICUBIC, NULL, NULL, NULL);
    if (sws == NULL)
        return -1;
    const uint8_t *sp[3] = {src->data[0] + y * src->linesize[0] + x, src->data[1] + y / 2 * src->linesize[1] + x / 2,
                            src->data[2] + y / 2 * src->linesize[2] + x / 2};
    uint8_t *dp[3] = {dst->data[0] + dy * dst->linesize[0] + dx, dst->data[1] + dy / 2 * dst->linesize[1] + dx / 2,
                      dst->data[2] + dy / 2 * dst->linesize[2] + dx / 2};
    sws_scale(sws, sp, src->linesize, 0, h, dp, dst->linesize);
    sws_freeContext(sws);
    return 0;
}

static AVFrame *blank(int w, int h)
{
    AVFrame *f = av_frame_alloc();
    if (f == NULL)
        return NULL;
    f->format = AV_PIX_FMT_YUV420P;
    f->width = w;
    f->height = h;
    if (av_frame_get_buffer(f, 0) < 0) {
        av_frame_free(&f);
        return NULL;
    }
    for (int y = 0; y < h; y++)
        memset(f->data[0] + y * f->linesize[0], 16, (size_t)w);
    for (int y = 0; y < h / 2; y++) {
        memset(f->data[1] + y * f->linesize[1], 128, (size_t)w / 2);
        memset(f->data[2] + y * f->linesize[2], 128, (size_t)w / 2);
    }
    return f;
}

static int write_webp(pc_job *j, const AVFrame *f, const char *rel)
{
    const AVCodec *codec = avcodec_find_encoder_by_name("libwebp");
    if (codec == NULL)
        return pc_job_fail(j, PC_EENCODE, 0, "encode_failed", "FFmpeg lacks the libwebp encoder");
    AVCodecContext *c = avcodec_alloc_context3(codec);
    AVPacket *p = av_packet_alloc();
    int r = c != NULL && p != NULL ? 0 : PC_ENOMEM;
    if (r == 0) {
        c->width = f->width;
        c->height = f->height;
        c->pix_fmt = AV_PIX_FMT_YUV420P;
        c->time_base = (AVRational){1, 25};
        c->thread_count = 1;
        if (avcodec_open2(c, codec, NULL) < 0 || avcodec_send_frame(c, f) < 0 || avcodec_send_frame(c, NULL) < 0 ||
            avcodec_receive_packet(c, p) < 0)
            r = PC_EENCODE;
    }
    if (r == 0) {
        char path[4300];
        snprintf(path, sizeof(path), "%s/%s", j->out_dir, rel);
        r = pc_write_file(path, p->data, (size_t)p->size);
    }
    av_packet_free(&p);
    avcodec_free_context(&c);
    if (r != 0)
        return pc_job_fail(j, r, 0, "encode_failed", "cannot write %s", rel);
    return 0;
}

static double luma_variance(const AVFrame *f)
{
    double sum = 0, sq = 0;
    long n = 0;
    for (int y = 0; y < f->height; y += 4)
        for (int x = 0; x < f->width; x += 4) {
            double v = f->data[0][y * f->linesize[0] + x];
            sum += v;
            sq += v * v;
            n++;
        }
    double m = sum / (double)n;
    return sq / (double)n - m * m;
}

/* Crops |src| to aspect |an|:|ad| (centred) and writes it as WebP no larger than max_w x max_h. */
static int poster(pc_job *j, const AVFrame *src, int an, int ad, int max_w, int max_h, const char *rel)
{
    int w = src->width, h = src->height, cw = w, ch = h;
    if ((double)w / h > (double)an / ad)
        cw = even((double)h * an / ad);
    else
        ch = even((double)w * ad / an);
    if (cw > w)
        cw = w & ~1;
    if (ch > h)
        ch = h & ~1;
    int ow = cw, oh = ch;
    if (ow > max_w) {
        oh = even((double)oh * max_w / ow);
        ow = max_w;
    }
    if (oh > max_h) {
        ow = even((double)ow * max_h / oh);
        oh = max_h;
    }
    AVFrame *out = blank(ow, oh);
    if (out == NULL)
        return pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
    int r = blit(src, ((w - cw) / 2) & ~1, ((h - ch) / 2) & ~1, cw, ch, out, 0, 0, ow, oh);
    if (r == 0)
        r = write_webp(j, out, rel);
    else
        pc_job_fail(j, PC_EENCODE, 0, "encode_failed", "cannot scale the poster");
    av_frame_free(&out);
    return j->err;
}

static void vtt_time(double s, char *out, size_t len)
{
    long ms = lround(s * 1000);
    snprintf(out, len, "%02ld:%02ld:%02ld.%03ld", ms / 3600000, ms / 60000 % 60, ms / 1000 % 60, ms % 1000);
}

int pc_task_thumbs(pc_job *j)
{
    struct th t;
    memset(&t, 0, sizeof(t));
    t.j = j;
    json_t *plan = json_loads(j->plan != NULL ? j->plan : "", 0, NULL);
    pc_buf vtt;
    pc_buf_init(&vtt, (size_t)4 << 20);
    AVFrame *sheet = NULL, *best = NULL;
    if (plan == NULL)
        return pc_job_fail(j, PC_EINTERNAL, 1, "internal_error", "the plan is missing");
    json_t *rungs = json_object_get(plan, "rungs");
    json_t *top = json_array_get(rungs, json_array_size(rungs) - 1);
    t.base_w = (int)pc_json_int(top, "width", 0);
    t.base_h = (int)pc_json_int(top, "height", 0);
    double duration = pc_json_num(plan, "duration", 0);
    json_t *fr = json_object_get(plan, "frame_rate"), *tb = json_object_get(plan, "time_base");
    pc_timeline_init(&t.tl, json_is_true(json_object_get(plan, "cfr")), pc_json_int(plan, "first_pts", 0),
                     (int)json_integer_value(json_array_get(tb, 0)), (int)json_integer_value(json_array_get(tb, 1)),
                     (int)json_integer_value(json_array_get(fr, 0)), (int)json_integer_value(json_array_get(fr, 1)));
    t.pkt = av_packet_alloc();
    t.frame = av_frame_alloc();
    char dir[4300];
    snprintf(dir, sizeof(dir), "%s/thumbs", j->out_dir);
    int r = pc_mkdirs(dir);
    if (r != 0 || t.pkt == NULL || t.frame == NULL) {
        pc_job_fail(j, r != 0 ? r : PC_ENOMEM, 0, "io_error", "cannot prepare thumbnails");
        goto out;
    }
    t.vidx = (int)pc_json_int(plan, "video_index", 0);
    if (pc_av_open(j, j->source, &t.fmt) < 0 || avformat_find_stream_info(t.fmt, NULL) < 0 ||
        t.vidx >= (int)t.fmt->nb_streams || pc_av_open_decoder(t.fmt, t.vidx, 1, &t.dec) < 0) {
        pc_job_fail(j, PC_EIO, 0, "io_error", "cannot open the source");
        goto out;
    }
    if (build(&t, (int)pc_json_int(plan, "rotation", 0)) < 0) {
        pc_job_fail(j, PC_EENCODE, 0, "encode_failed", "cannot build the thumbnail scaler");
        goto out;
    }
    /* poster: the most detailed of five candidates */
    double bestvar = -1;
    for (int k = 1; k <= 5; k++) {
        AVFrame *f = frame_at(&t, duration * (0.1 + 0.8 * (k - 1) / 4.0) * (duration > 1 ? 1 : 0));
        if (f == NULL)
            continue;
        double v = luma_variance(f);
        if (v > bestvar) {
            av_frame_free(&best);
            best = f;
            bestvar = v;
        } else {
            av_frame_free(&f);
        }
        atomic_store(&j->progress, k * 60);
    }
    if (best == NULL) {
        pc_job_fail(j, PC_EUNDECODABLE, 0, "undecodable", "no frame could be decoded for the poster");
        goto out;
    }
    if (poster(j, best, 16, 9, 1280, 720, "thumbs/poster-16x9.webp") != 0 ||
        poster(j, best, 2, 3, 480, 720, "thumbs/poster-2x3.webp") != 0)
        goto out;
    /* sprite */
    double interval = duration / 100 > 2 ? ceil(duration / 100) : 2;
    int tiles = (int)ceil(duration / interval);
    if (tiles < 1)
        tiles = 1;
    if (tiles > MAX_TILES)
        tiles = MAX_TILES;
    int tw = TILE_W, tht = even((double)TILE_W * t.base_h / t.base_w);
    r = pc_buf_append_str(&vtt, "WEBVTT\n\n");
    int sheets = 0;
    for (int i = 0; i < tiles && r == 0; i++) {
        int in_sheet = i % (COLS * ROWS);
        if (in_sheet == 0) {
            int left = tiles - i, n = left < COLS * ROWS ? left : COLS * ROWS;
            int cols = n < COLS ? n : COLS, rows = (n + COLS - 1) / COLS;
            av_frame_free(&sheet);
            sheet = blank(cols * tw, rows * tht);
            if (sheet == NULL) {
                pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
                goto out;
            }
        }
        double at = i * interval;
        AVFrame *f = frame_at(&t, at);
        if (pc_job_canceled(j)) {
            av_frame_free(&f);
            pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
            goto out;
        }
        int x = in_sheet % COLS * tw, y = in_sheet / COLS * tht;
        if (f != NULL)
            blit(f, 0, 0, f->width & ~1, f->height & ~1, sheet, x, y, tw, tht);
        av_frame_free(&f);
        char a[32], b[32];
        vtt_time(at, a, sizeof(a));
        vtt_time(at + interval < duration ? at + interval : duration, b, sizeof(b));
        r = pc_buf_printf(&vtt, "%s --> %s\nsprite-%d.webp#xywh=%d,%d,%d,%d\n\n", a, b, sheets, x, y, tw, tht);
        if (in_sheet == COLS * ROWS - 1 || i == tiles - 1) {
            char rel[64];
            snprintf(rel, sizeof(rel), "thumbs/sprite-%d.webp", sheets++);
            if (write_webp(j, sheet, rel) != 0)
                goto out;
        }
        atomic_store(&j->progress, 300 + 650 * (i + 1) / tiles);
    }
    char path[4300];
    snprintf(path, sizeof(path), "%s/thumbs/sprite.vtt", j->out_dir);
    if (r != 0 || (r = pc_write_file(path, vtt.data, vtt.len)) != 0) {
        pc_job_fail(j, r != 0 ? r : PC_ENOMEM, 0, "io_error", "cannot write sprite.vtt");
        goto out;
    }
    json_t *res = json_pack("{s:s, s:s, s:s, s:i, s:f, s:i, s:i}", "poster_16x9", "thumbs/poster-16x9.webp", "poster_2x3",
                            "thumbs/poster-2x3.webp", "sprite_vtt", "thumbs/sprite.vtt", "sprites", sheets, "interval",
                            interval, "tile_width", tw, "tile_height", tht);
    j->result = pc_json_dump(res);
    json_decref(res);
    atomic_store(&j->progress, 1000);
out:
    av_frame_free(&best);
    av_frame_free(&sheet);
    pc_buf_clear(&vtt);
    avfilter_graph_free(&t.graph);
    avcodec_free_context(&t.dec);
    avformat_close_input(&t.fmt);
    av_packet_free(&t.pkt);
    av_frame_free(&t.frame);
    json_decref(plan);
    return j->err;
}
