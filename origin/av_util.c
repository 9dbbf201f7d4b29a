/* FFmpeg and file helpers for the pipeline tasks; see av_util.h. */
#include "av_util.h"
#include "stitch.h"

#include <errno.h>
#include <fcntl.h>
#include <libavutil/display.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int interrupt_cb(void *opaque)
{
    return opaque != NULL && pc_job_canceled(opaque);
}

int pc_av_open(pc_job *j, const char *path, int fmt_flags, AVFormatContext **out)
{
    return pc_av_open_with(j, path, fmt_flags, NULL, out);
}

int pc_av_open_with(pc_job *j, const char *path, int fmt_flags, AVDictionary **opts, AVFormatContext **out)
{
    AVFormatContext *fmt = avformat_alloc_context();
    if (fmt == NULL)
        return AVERROR(ENOMEM);
    fmt->flags |= fmt_flags;
    fmt->interrupt_callback.callback = interrupt_cb;
    fmt->interrupt_callback.opaque = j;
    int r = avformat_open_input(&fmt, path, NULL, opts);
    if (r < 0)
        return r; /* fmt freed by FFmpeg */
    *out = fmt;
    return 0;
}

int pc_av_open_source(pc_job *j, const json_t *plan, AVFormatContext **out)
{
    char path[4200];
    const char *src = j->source;
    const char *copy = json_string_value(json_object_get(plan, "copy"));
    if (copy != NULL) {
        if (strcmp(copy, PC_STITCHED_NAME) != 0 && strcmp(copy, PC_TIMED_NAME) != 0)
            return AVERROR(EINVAL); /* the plan names only our own copies */
        snprintf(path, sizeof(path), "%s/%s", j->work_dir, copy);
        src = path;
    }
    return pc_av_open(j, src, json_is_true(json_object_get(plan, "genpts")) ? AVFMT_FLAG_GENPTS : 0, out);
}

int pc_job_write(pc_job *j, const char *rel, const pc_buf *b)
{
    char path[4400];
    snprintf(path, sizeof(path), "%s/%s", j->out_dir, rel);
    int r = pc_write_file(path, b->data, b->len);
    if (r != 0)
        pc_job_fail(j, r, 0, "io_error", "cannot write %s", rel);
    return r;
}

int pc_job_write_kept(pc_job *j, const char *rel, const pc_buf *b)
{
    char path[4400];
    snprintf(path, sizeof(path), "%s/%s", j->out_dir, rel);
    if (pc_job_is_revision(j) && access(path, F_OK) == 0)
        return 0;
    return pc_job_write(j, rel, b);
}

json_t *pc_job_input(const json_t *in, const char *kind)
{
    size_t kl = strlen(kind);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)in, key, v)
    {
        if (strncmp(key, kind, kl) == 0 && key[kl] == ':')
            return v;
    }
    return NULL;
}

int pc_av_video_stream(const AVFormatContext *fmt)
{
    int best = -1;
    int64_t best_px = -1;
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        const AVStream *st = fmt->streams[i];
        if (st->codecpar->codec_type != AVMEDIA_TYPE_VIDEO || (st->disposition & AV_DISPOSITION_ATTACHED_PIC))
            continue;
        int64_t px = (int64_t)st->codecpar->width * st->codecpar->height;
        if (st->disposition & AV_DISPOSITION_DEFAULT)
            px += (int64_t)1 << 40;
        if (px > best_px) {
            best_px = px;
            best = (int)i;
        }
    }
    return best;
}

int pc_av_err_transient(int averr)
{
    return averr == AVERROR(ENOMEM) || averr == AVERROR(EMFILE) || averr == AVERROR(ENFILE) ||
           averr == AVERROR(EIO) || averr == AVERROR(EACCES) || averr == AVERROR(EAGAIN) || averr == AVERROR(EINTR) ||
           averr == AVERROR(ENOSPC);
}

int pc_av_open_decoder(const AVFormatContext *fmt, int idx, int threads, AVCodecContext **out)
{
    const AVStream *st = fmt->streams[idx];
    const AVCodec *dec = avcodec_find_decoder(st->codecpar->codec_id);
    if (dec == NULL)
        return AVERROR_DECODER_NOT_FOUND;
    AVCodecContext *c = avcodec_alloc_context3(dec);
    if (c == NULL)
        return AVERROR(ENOMEM);
    int r = avcodec_parameters_to_context(c, st->codecpar);
    if (r >= 0) {
        c->pkt_timebase = st->time_base;
        c->thread_count = threads;
        r = avcodec_open2(c, dec, NULL);
    }
    if (r < 0) {
        avcodec_free_context(&c);
        return r;
    }
    *out = c;
    return 0;
}

void pc_av_feed(AVFormatContext *fmt, AVCodecContext *dec, int idx, AVPacket *pkt, int *eof, pc_feed *f)
{
    if (*eof)
        return;
    int r = av_read_frame(fmt, pkt);
    if (r == AVERROR(EAGAIN))
        return;
    if (r < 0) {
        *eof = r == AVERROR_EOF ? PC_FEED_END : PC_FEED_READ_ERROR;
        avcodec_send_packet(dec, NULL);
        return;
    }
    unsigned m = f != NULL ? f->mode : 0;
    if (pkt->stream_index == idx && (m & PC_FEED_WAIT_KEY)) {
        int64_t t = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pkt->pts;
        if (pkt->flags & AV_PKT_FLAG_KEY)
            m &= ~(unsigned)PC_FEED_WAIT_KEY;
        else if (t != AV_NOPTS_VALUE && t > f->wait_until)
            m |= PC_FEED_KEY_MISSED;
        f->mode = m;
    }
    if (pkt->stream_index == idx && !(m & PC_FEED_WAIT_KEY)) {
        if (m & PC_FEED_DECODE_ORDER) {
            pkt->flags &= ~AV_PKT_FLAG_DISCARD;
            if (pkt->pts == AV_NOPTS_VALUE)
                pkt->pts = pkt->dts; /* the frame out carries its own packet's time */
        }
        avcodec_send_packet(dec, pkt);
    }
    av_packet_unref(pkt);
}

const char *pc_av_err(int averr, char *buf, size_t len)
{
    if (av_strerror(averr, buf, len) < 0)
        snprintf(buf, len, "error %d", averr);
    return buf;
}

int pc_av_rotation(const AVStream *st)
{
    size_t size = 0;
    const uint8_t *m = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
    if (m == NULL || size < 9 * sizeof(int32_t))
        return 0;
    double theta = -av_display_rotation_get((const int32_t *)m);
    if (isnan(theta))
        return 0;
    theta -= 360 * floor(theta / 360 + 0.9 / 360);
    int r = (int)lround(theta / 90.0) * 90 % 360;
    return r < 0 ? r + 360 : r;
}

int pc_frames_write(const char *path, const int64_t *pts, size_t n)
{
    return pc_write_file(path, pts, n * sizeof(*pts));
}

int pc_frames_read(const char *path, int64_t **pts, size_t *n)
{
    char *data = NULL;
    size_t len = 0;
    int r = pc_read_file(path, (size_t)64 << 20, &data, &len);
    if (r != 0)
        return r;
    if (len % sizeof(int64_t) != 0) {
        free(data);
        return PC_EPARSE;
    }
    *pts = (int64_t *)(void *)data;
    *n = len / sizeof(int64_t);
    return 0;
}

