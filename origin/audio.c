/*
 * audio: the source's audio, decoded once, resampled to 48 kHz stereo and
 * encoded once as AAC-LC 128 kb/s; one CMAF track shared by every rung.
 * Audio time 0 is the first video frame: earlier samples are dropped, gaps
 * (over 100 ms, as ffmpeg's aresample sees them) and a late start are filled
 * with silence, and the track is cut or padded to the video's end. Where the
 * parts of joined recordings meet (stitch.h), a part's audio is placed to the
 * sample: overlap trimmed, any gap filled. A change of sample rate, format or
 * channel layout mid-stream gets a new conversion. Segment s holds the AAC frames that start within video
 * segment s, so audio and video segments share numbering and boundaries
 * (within one 21 ms AAC frame). The encoder's 1024-sample priming is
 * signalled with an edit list.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>

#include "av_util.h"
#include "cmaf.h"
#include "job.h"
#include "pc_json.h"
#include "pc_log.h"

#define RATE 48000
#define FRAME 1024

struct apkt {
    int64_t pts;
    uint8_t *data;
    int size;
};

struct aud {
    pc_job *j;
    int64_t *seg_t; /* seconds * RATE of each video segment start, plus end */
    int nseg;
    int seg;
    struct apkt *pkts;
    size_t npkts, cap;
    json_t *segs;
    char dir[4200];
    int64_t priming;
};

static int write_seg(struct aud *a)
{
    if (a->npkts == 0)
        return 0;
    pc_cmaf_sample *smp = calloc(a->npkts, sizeof(*smp));
    pc_buf data, out;
    pc_buf_init(&data, (size_t)64 << 20);
    pc_buf_init(&out, (size_t)64 << 20);
    int r = smp != NULL ? 0 : PC_ENOMEM;
    for (size_t i = 0; r == 0 && i < a->npkts; i++) {
        smp[i].duration = FRAME;
        smp[i].size = (uint32_t)a->pkts[i].size;
        smp[i].sync = 1;
        r = pc_buf_append(&data, a->pkts[i].data, (size_t)a->pkts[i].size);
    }
    /* decode time = presentation + priming, so the first packet decodes at 0 */
    uint64_t tfdt = (uint64_t)(a->pkts[0].pts + a->priming);
    if (r == 0)
        r = pc_cmaf_write_segment(&out, 0, (uint32_t)(a->seg + 1), tfdt, smp, a->npkts, (const uint8_t *)data.data, data.len);
    char path[4300];
    snprintf(path, sizeof(path), "%s/seg-%05d.m4s", a->dir, a->seg + 1);
    if (r == 0)
        r = pc_write_file(path, out.data, out.len);
    if (r == 0) {
        /* decode duration (whole AAC frames): the next segment's tfdt is exactly this one's plus it */
        json_array_append_new(a->segs, json_pack("[i,I,I,I]", a->seg + 1, (json_int_t)tfdt,
                                                 (json_int_t)(a->npkts * FRAME), (json_int_t)out.len));
    } else {
        pc_job_fail(a->j, r, 0, "io_error", "cannot write audio segment %d", a->seg + 1);
    }
    for (size_t i = 0; i < a->npkts; i++)
        free(a->pkts[i].data);
    a->npkts = 0;
    free(smp);
    pc_buf_clear(&data);
    pc_buf_clear(&out);
    return r;
}

/* Packet |p| into the segment it begins in; but a segment gets one packet at least before the next
 * begins: a video segment shorter than an AAC frame (a frame alone after a gap in a sparse recording)
 * would otherwise get none, and the video would fail for an audio segment missing. Its audio then runs
 * into the next by a frame, 21 ms, as the cuts already may. */
static int take(struct aud *a, const AVPacket *p)
{
    while (a->seg + 1 < a->nseg && p->pts >= a->seg_t[a->seg + 1] && a->npkts > 0) {
        int r = write_seg(a);
        if (r != 0)
            return r;
        a->seg++;
    }
    if (a->npkts == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 512;
        struct apkt *np = realloc(a->pkts, cap * sizeof(*np));
        if (np == NULL)
            return pc_job_fail(a->j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
        a->pkts = np;
        a->cap = cap;
    }
    struct apkt *k = &a->pkts[a->npkts];
    k->data = malloc((size_t)p->size);
    if (k->data == NULL)
        return pc_job_fail(a->j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
    memcpy(k->data, p->data, (size_t)p->size);
    k->size = p->size;
    k->pts = p->pts;
    a->npkts++;
    return 0;
}

static int drain(struct aud *a, AVCodecContext *enc, AVPacket *p)
{
    for (;;) {
        int r = avcodec_receive_packet(enc, p);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF)
            return 0;
        if (r < 0)
            return pc_job_fail(a->j, PC_EENCODE, 0, "encode_failed", "the AAC encoder failed");
        r = take(a, p);
        av_packet_unref(p);
        if (r != 0)
            return r;
    }
}

/* Encodes whole frames from the fifo (and the rest when |final|). */
static int encode_fifo(struct aud *a, AVCodecContext *enc, AVAudioFifo *fifo, AVFrame *f, AVPacket *p, int64_t *sent, int final)
{
    while (av_audio_fifo_size(fifo) >= FRAME || (final && av_audio_fifo_size(fifo) > 0)) {
        int n = av_audio_fifo_size(fifo) < FRAME ? av_audio_fifo_size(fifo) : FRAME;
        f->nb_samples = n;
        f->format = enc->sample_fmt;
        f->sample_rate = RATE;
        av_channel_layout_copy(&f->ch_layout, &enc->ch_layout);
        if (av_frame_get_buffer(f, 0) < 0)
            return pc_job_fail(a->j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
        av_audio_fifo_read(fifo, (void **)f->data, n);
        f->pts = *sent;
        *sent += n;
        int r = avcodec_send_frame(enc, f);
        av_frame_unref(f);
        if (r < 0)
            return pc_job_fail(a->j, PC_EENCODE, 0, "encode_failed", "the AAC encoder refused a frame");
        if ((r = drain(a, enc, p)) != 0)
            return r;
    }
    return 0;
}

static int push_silence(AVAudioFifo *fifo, int64_t n)
{
    float zeros[FRAME];
    memset(zeros, 0, sizeof(zeros));
    void *planes[2] = {zeros, zeros};
    while (n > 0) {
        int k = n > FRAME ? FRAME : (int)n;
        if (av_audio_fifo_write(fifo, planes, k) < k)
            return -1;
        n -= k;
    }
    return 0;
}

/* Queues up to |n| samples of |planes| (from sample |from| on) in |fifo|, no further than the
 * video's end |total|; |*pos| counts the samples queued. Returns 0, or -1 when out of memory. */
static int queue(AVAudioFifo *fifo, uint8_t **planes, int64_t from, int64_t n, int64_t *pos, int64_t total)
{
    int64_t keep = *pos + n > total ? total - *pos : n;
    if (keep <= 0)
        return 0;
    void *at[2] = {planes[0] + from * (int64_t)sizeof(float), planes[1] + from * (int64_t)sizeof(float)};
    if (av_audio_fifo_write(fifo, at, (int)keep) < keep)
        return -1;
    *pos += keep;
    return 0;
}

/* Queues what |swr| still holds (|conv|: room for |cap| samples). Returns 0, or -1 when out of memory. */
static int flush_swr(SwrContext *swr, uint8_t **conv, int cap, AVAudioFifo *fifo, int64_t *pos, int64_t total)
{
    for (int got; swr != NULL && conv != NULL && (got = swr_convert(swr, conv, cap, NULL, 0)) > 0;)
        if (queue(fifo, conv, 0, got, pos, total) != 0)
            return -1;
    return 0;
}

int pc_task_audio(pc_job *j)
{
    struct aud a;
    memset(&a, 0, sizeof(a));
    a.j = j;
    json_t *plan = json_loads(j->plan != NULL ? j->plan : "", 0, NULL);
    json_t *ap = json_object_get(plan, "audio");
    if (!json_is_object(ap)) {
        json_decref(plan);
        return pc_job_fail(j, PC_EINTERNAL, 1, "internal_error", "the plan has no audio");
    }
    AVFormatContext *fmt = NULL;
    AVCodecContext *dec = NULL, *enc = NULL;
    SwrContext *swr = NULL;
    AVChannelLayout swr_layout = {0}; /* what swr converts from: the frames' layout, rate and format */
    int swr_rate = 0, swr_format = -1;
    AVAudioFifo *fifo = NULL;
    AVPacket *pkt = av_packet_alloc(), *opkt = av_packet_alloc();
    AVFrame *frame = av_frame_alloc(), *ef = av_frame_alloc();
    uint8_t **conv = NULL;
    int conv_cap = 0;
    char eb[128];
    json_t *segs = json_object_get(plan, "segments");
    int64_t ts = pc_json_int(plan, "timescale", 90000);
    a.nseg = (int)json_array_size(segs);
    a.seg_t = calloc((size_t)a.nseg + 1, sizeof(int64_t));
    a.segs = json_array();
    if (a.seg_t == NULL || pkt == NULL || opkt == NULL || frame == NULL || ef == NULL) {
        pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
        goto out;
    }
    for (int i = 0; i < a.nseg; i++)
        a.seg_t[i] = av_rescale(json_integer_value(json_array_get(json_array_get(segs, (size_t)i), 0)), RATE, ts);
    a.seg_t[a.nseg] = av_rescale(pc_json_int(plan, "end", 0), RATE, ts);
    int64_t total = a.seg_t[a.nseg];
    snprintf(a.dir, sizeof(a.dir), "%s/a", j->out_dir);
    int r = pc_mkdirs(a.dir);
    if (r != 0) {
        pc_job_fail(j, r, 0, "io_error", "cannot create %s", a.dir);
        goto out;
    }
    if ((r = pc_av_open_source(j, plan, &fmt)) < 0 || avformat_find_stream_info(fmt, NULL) < 0) {
        pc_job_fail(j, PC_EIO, 0, "io_error", "cannot open the source (%s)", pc_av_err(r, eb, sizeof(eb)));
        goto out;
    }
    int aidx = (int)pc_json_int(ap, "index", -1);
    if (aidx < 0 || aidx >= (int)fmt->nb_streams || (r = pc_av_open_decoder(fmt, aidx, 1, &dec)) < 0) {
        if (aidx >= 0 && aidx < (int)fmt->nb_streams && pc_av_err_transient(r)) /* out of memory: again later */
            pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "cannot open the audio decoder (%s)", pc_av_err(r, eb, sizeof(eb)));
        else
            pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable", "cannot decode the audio stream");
        goto out;
    }
    const AVCodec *aac = avcodec_find_encoder(AV_CODEC_ID_AAC);
    enc = aac != NULL ? avcodec_alloc_context3(aac) : NULL;
    if (enc == NULL) {
        pc_job_fail(j, PC_EENCODE, 0, "encode_failed", "no AAC encoder");
        goto out;
    }
    enc->sample_rate = RATE;
    enc->sample_fmt = AV_SAMPLE_FMT_FLTP;
    enc->bit_rate = pc_json_int(ap, "bitrate", 128000);
    enc->time_base = (AVRational){1, RATE};
    enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    av_channel_layout_default(&enc->ch_layout, 2);
    if ((r = avcodec_open2(enc, aac, NULL)) < 0 || enc->frame_size != FRAME) {
        pc_job_fail(j, PC_EENCODE, 0, "encode_failed", "cannot open the AAC encoder (%s)", pc_av_err(r, eb, sizeof(eb)));
        goto out;
    }
    a.priming = enc->initial_padding;
    fifo = av_audio_fifo_alloc(AV_SAMPLE_FMT_FLTP, 2, RATE);
    if (fifo == NULL) {
        pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
        goto out;
    }
    json_t *vtb = json_object_get(plan, "time_base");
    double t0 = (double)pc_json_int(plan, "first_pts", 0) * (double)json_integer_value(json_array_get(vtb, 0)) /
                (double)json_integer_value(json_array_get(vtb, 1));
    AVRational atb = fmt->streams[aidx]->time_base;
    int64_t pos = 0, sent = 0; /* samples written to the fifo / sent to the encoder */
    const json_t *joins = json_object_get(ap, "joins"); /* seconds: where a stitched part's audio begins */
    size_t ji = 0;
    int64_t trim = 0; /* samples still to drop where a part's audio overlaps the previous part's */
    int eof = 0, dec_done = 0;
    while (!dec_done && pos < total) {
        if (pc_job_canceled(j)) {
            pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled");
            goto out;
        }
        pc_av_feed(fmt, dec, aidx, pkt, &eof, NULL);
        for (;;) {
            r = avcodec_receive_frame(dec, frame);
            if (r == AVERROR(EAGAIN))
                break;
            if (r < 0) {
                dec_done = 1;
                break;
            }
            if (swr != NULL && (frame->sample_rate != swr_rate || frame->format != swr_format ||
                                av_channel_layout_compare(&frame->ch_layout, &swr_layout) != 0)) {
                /* the audio changed mid-stream (a broadcast's stereo ad break in 5.1, the parts of
                 * joined recordings): what the old conversion holds goes out, then a new one */
                if (flush_swr(swr, conv, conv_cap, fifo, &pos, total) != 0) {
                    av_frame_unref(frame);
                    pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
                    goto out;
                }
                swr_free(&swr);
            }
            if (swr == NULL) {
                av_channel_layout_uninit(&swr_layout);
                if (av_channel_layout_copy(&swr_layout, &frame->ch_layout) < 0) {
                    av_frame_unref(frame);
                    pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
                    goto out;
                }
                swr_rate = frame->sample_rate;
                swr_format = frame->format;
                AVChannelLayout in = {0};
                if (frame->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC || frame->ch_layout.nb_channels == 0)
                    av_channel_layout_default(&in, frame->ch_layout.nb_channels > 0 ? frame->ch_layout.nb_channels : dec->ch_layout.nb_channels);
                else
                    av_channel_layout_copy(&in, &frame->ch_layout);
                r = swr_alloc_set_opts2(&swr, &enc->ch_layout, AV_SAMPLE_FMT_FLTP, RATE, &in, frame->format,
                                        frame->sample_rate, 0, NULL);
                av_channel_layout_uninit(&in);
                /* a downmix (5.1 to stereo) whose matrix is scaled so that no output exceeds full scale:
                 * FFmpeg's own adds L + 0.707 C + 0.707 Ls and clips in float (a 5.1 source peaking at
                 * -1.8 dBFS came out at +2.0, 10 271 samples over in 3 s; found by review). Stereo and
                 * mono sources are not changed by it (their matrix rows already sum to 1 or less). */
                if (r >= 0)
                    r = av_opt_set_double(swr, "rematrix_maxval", 1.0, 0);
                if (r < 0 || swr_init(swr) < 0) {
                    av_frame_unref(frame);
                    pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable", "cannot convert the audio format");
                    goto out;
                }
            }
            int64_t p = frame->best_effort_timestamp;
            if (p != AV_NOPTS_VALUE) {
                /* where this frame belongs on the output timeline */
                int64_t want = (int64_t)llround(((double)p * av_q2d(atb) - t0) * RATE) - swr_get_delay(swr, RATE);
                /* where a stitched part's audio begins its time is exact: overlap trimmed, gap filled */
                int join = 0;
                for (; ji < json_array_size(joins) && (double)p * av_q2d(atb) >= json_number_value(json_array_get(joins, ji)) - 0.0005; ji++)
                    join = 1;
                if (join && want < pos)
                    trim = pos - want;
                if (want > pos + RATE / 10 || (join && want > pos)) {
                    int64_t gap = (want > total ? total : want) - pos;
                    if (gap > 0 && push_silence(fifo, gap) == 0)
                        pos += gap;
                }
            }
            int outmax = swr_get_out_samples(swr, frame->nb_samples);
            if (outmax > conv_cap) {
                if (conv != NULL)
                    av_freep(&conv[0]);
                av_freep(&conv);
                if (av_samples_alloc_array_and_samples(&conv, NULL, 2, outmax, AV_SAMPLE_FMT_FLTP, 0) < 0) {
                    av_frame_unref(frame);
                    pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
                    goto out;
                }
                conv_cap = outmax;
            }
            int got = swr_convert(swr, conv, conv_cap, (const uint8_t **)frame->extended_data, frame->nb_samples);
            av_frame_unref(frame);
            if (got < 0) {
                pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable", "audio conversion failed");
                goto out;
            }
            /* the part before the first video frame is dropped: skip while pos would be negative */
            int64_t start_at = 0;
            if (p != AV_NOPTS_VALUE && sent == 0 && pos == 0) {
                int64_t where = (int64_t)llround(((double)p * av_q2d(atb) - t0) * RATE);
                if (where < 0)
                    start_at = -where < got ? -where : got;
            }
            if (trim > 0) {
                int64_t k = trim < got ? trim : got;
                start_at = k > start_at ? k : start_at;
                trim -= k;
            }
            if (queue(fifo, conv, start_at, got - start_at, &pos, total) != 0) {
                pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
                goto out;
            }
            if (encode_fifo(&a, enc, fifo, ef, opkt, &sent, 0) != 0)
                goto out;
            atomic_store(&j->progress, (int)(950 * pos / (total > 0 ? total : 1)));
        }
    }
    if (eof == PC_FEED_READ_ERROR) { /* not the end of the audio: retried, not padded with silence */
        pc_job_fail(j, PC_EIO, 0, "io_error", "cannot read the source");
        goto out;
    }
    if (flush_swr(swr, conv, conv_cap, fifo, &pos, total) != 0) { /* the resampler's last samples */
        pc_job_fail(j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
        goto out;
    }
    if (pos < total && push_silence(fifo, total - pos) == 0)
        pos = total;
    if (encode_fifo(&a, enc, fifo, ef, opkt, &sent, 1) != 0)
        goto out;
    avcodec_send_frame(enc, NULL);
    if (drain(&a, enc, opkt) != 0 || write_seg(&a) != 0)
        goto out;
    if ((int)json_array_size(a.segs) != a.nseg) {
        pc_job_fail(j, PC_EENCODE, 0, "encode_failed", "audio produced %zu segments for %d video segments",
                    json_array_size(a.segs), a.nseg);
        goto out;
    }
    char b64[256];
    pc_b64_encode(enc->extradata, (size_t)enc->extradata_size, b64, 0);
    json_t *res = json_pack("{s:s, s:s, s:I, s:i, s:i, s:I, s:O}", "asc", b64, "codecs", "mp4a.40.2", "priming",
                            (json_int_t)a.priming, "sample_rate", RATE, "channels", 2, "bitrate", (json_int_t)enc->bit_rate,
                            "segments", a.segs);
    j->result = pc_json_dump(res);
    json_decref(res);
    atomic_store(&j->progress, 1000);
out:
    for (size_t i = 0; i < a.npkts; i++)
        free(a.pkts[i].data);
    free(a.pkts);
    free(a.seg_t);
    json_decref(a.segs);
    if (conv != NULL)
        av_freep(&conv[0]);
    av_freep(&conv);
    av_audio_fifo_free(fifo);
    swr_free(&swr);
    av_channel_layout_uninit(&swr_layout);
    avcodec_free_context(&enc);
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
    av_packet_free(&pkt);
    av_packet_free(&opkt);
    av_frame_free(&frame);
    av_frame_free(&ef);
    json_decref(plan);
    return j->err;
}
