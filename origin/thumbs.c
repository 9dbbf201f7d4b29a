/*
 * Thumbnails: poster frames cropped to 16:9 (up to 1280x720) and 2:3 (up to
 * 480x720), and a scrubbing sprite of 160-pixel-wide tiles (10 columns, at
 * most 100 tiles per sheet) with a WebVTT index ("sprite-0.webp#xywh=..."),
 * all WebP through libavcodec's libwebp encoder. Frames are captured by the
 * encode chunks (see thumbs.h); the poster is the most detailed of five
 * candidates (highest luma variance), so it is rarely a black fade.
 */
#include "thumbs.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libswscale/swscale.h>

#include "av_util.h"
#include "media.h"
#include "pc_buf.h"
#include "pc_json.h"
#include "pc_log.h"

#define COLS 10
#define ROWS 10
#define POSTERS 5

struct pc_thumbs {
    pc_job *j;
    char dir[4200];
    int tile_w, tile_h, tiles;
    double interval;
    int64_t timescale, start, end;
    int64_t poster_at[POSTERS];
    int next_tile;   /* next tile index to capture */
    int next_poster; /* next poster candidate */
    int last_tile;   /* tiles of this chunk are [next_tile, last_tile) */
    AVFrame *last;   /* reference to the latest offered frame */
    int64_t last_ticks;
    json_t *posters;
};

static int even(double v)
{
    int i = (int)lround(v / 2) * 2;
    return i < 2 ? 2 : i;
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

static int write_webp(pc_job *j, const AVFrame *f, const char *path)
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
    int refused = r == PC_EENCODE; /* out of memory is passing: that one is tried again */
    if (r == 0)
        r = pc_write_file(path, p->data, (size_t)p->size);
    av_packet_free(&p);
    avcodec_free_context(&c);
    if (refused) /* the same frame fails the same way again: not worth five attempts */
        return pc_job_fail(j, r, 1, "encode_failed", "the WebP encoder refused %dx%d for %s", f->width, f->height,
                           path);
    if (r != 0)
        return pc_job_fail(j, r, 0, r == PC_ENOMEM ? "out_of_memory" : "io_error", "cannot write %s: %s", path,
                           pc_strerror(r));
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
static int poster(pc_job *j, const AVFrame *src, int an, int ad, int max_w, int max_h, const char *path)
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
        r = write_webp(j, out, path);
    else
        pc_job_fail(j, PC_EENCODE, 0, "encode_failed", "cannot scale the poster");
    av_frame_free(&out);
    return j->err;
}

/* ---- capture (encode chunks) ---- */

static int64_t tile_ticks(const pc_thumbs *t, int i)
{
    return (int64_t)llround(i * t->interval * (double)t->timescale);
}

pc_thumbs *pc_thumbs_new(pc_job *j, const json_t *plan, int64_t start, int64_t end)
{
    json_t *th = json_object_get(plan, "thumbs");
    if (!json_is_object(th))
        return NULL;
    pc_thumbs *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->j = j;
    t->interval = pc_json_num(th, "interval", 2);
    t->tiles = (int)pc_json_int(th, "tiles", 1);
    t->tile_w = (int)pc_json_int(th, "tile_width", 160);
    t->tile_h = (int)pc_json_int(th, "tile_height", 90);
    t->timescale = pc_json_int(plan, "timescale", 90000);
    t->start = start;
    t->end = end;
    for (int k = 0; k < POSTERS; k++)
        t->poster_at[k] = json_integer_value(json_array_get(json_object_get(th, "posters"), (size_t)k));
    /* this chunk captures the targets in [start, end) */
    while (t->next_tile < t->tiles && tile_ticks(t, t->next_tile) < start)
        t->next_tile++;
    t->last_tile = t->next_tile;
    while (t->last_tile < t->tiles && tile_ticks(t, t->last_tile) < end)
        t->last_tile++;
    while (t->next_poster < POSTERS && t->poster_at[t->next_poster] < start)
        t->next_poster++;
    t->posters = json_object();
    snprintf(t->dir, sizeof(t->dir), "%s/thumbs", j->work_dir);
    if (pc_mkdirs(t->dir) != 0) {
        pc_thumbs_free(t);
        return NULL;
    }
    return t;
}

static int capture_tile(pc_thumbs *t, const AVFrame *f, int i)
{
    AVFrame *tile = blank(t->tile_w, t->tile_h);
    if (tile == NULL)
        return pc_job_fail(t->j, PC_ENOMEM, 0, "out_of_memory", "out of memory");
    blit(f, 0, 0, f->width & ~1, f->height & ~1, tile, 0, 0, t->tile_w, t->tile_h);
    size_t ysz = (size_t)t->tile_w * (size_t)t->tile_h, csz = ysz / 4;
    uint8_t *raw = malloc(ysz + 2 * csz);
    int r = raw != NULL ? 0 : PC_ENOMEM;
    for (int y = 0; r == 0 && y < t->tile_h; y++)
        memcpy(raw + (size_t)y * (size_t)t->tile_w, tile->data[0] + y * tile->linesize[0], (size_t)t->tile_w);
    for (int y = 0; r == 0 && y < t->tile_h / 2; y++) {
        memcpy(raw + ysz + (size_t)y * (size_t)(t->tile_w / 2), tile->data[1] + y * tile->linesize[1], (size_t)t->tile_w / 2);
        memcpy(raw + ysz + csz + (size_t)y * (size_t)(t->tile_w / 2), tile->data[2] + y * tile->linesize[2],
               (size_t)t->tile_w / 2);
    }
    char path[4300];
    snprintf(path, sizeof(path), "%s/tile-%05d.yuv", t->dir, i);
    if (r == 0)
        r = pc_write_file(path, raw, ysz + 2 * csz);
    free(raw);
    av_frame_free(&tile);
    return r != 0 ? pc_job_fail(t->j, r, 0, "io_error", "cannot write a sprite tile") : 0;
}

static int capture_poster(pc_thumbs *t, const AVFrame *f, int k)
{
    char a[4300], b[4300];
    snprintf(a, sizeof(a), "%s/poster-16x9-%d.webp", t->dir, k);
    snprintf(b, sizeof(b), "%s/poster-2x3-%d.webp", t->dir, k);
    if (poster(t->j, f, 16, 9, 1280, 720, a) != 0 || poster(t->j, f, 2, 3, 480, 720, b) != 0)
        return t->j->err;
    char key[8];
    snprintf(key, sizeof(key), "%d", k);
    json_object_set_new(t->posters, key, json_real(luma_variance(f)));
    return 0;
}

int pc_thumbs_offer(pc_thumbs *t, const AVFrame *top, int64_t ticks)
{
    int r = 0;
    while (r == 0 && t->next_tile < t->last_tile && tile_ticks(t, t->next_tile) <= ticks)
        r = capture_tile(t, top, t->next_tile++);
    while (r == 0 && t->next_poster < POSTERS && t->poster_at[t->next_poster] <= ticks &&
           t->poster_at[t->next_poster] < t->end)
        r = capture_poster(t, top, t->next_poster++);
    av_frame_free(&t->last);
    t->last = av_frame_clone(top);
    t->last_ticks = ticks;
    return r;
}

int pc_thumbs_finish(pc_thumbs *t, json_t **result)
{
    int r = 0;
    /* targets after this chunk's last frame but before the next chunk: the last frame is close enough */
    while (r == 0 && t->last != NULL && t->next_tile < t->last_tile)
        r = capture_tile(t, t->last, t->next_tile++);
    while (r == 0 && t->last != NULL && t->next_poster < POSTERS && t->poster_at[t->next_poster] < t->end)
        r = capture_poster(t, t->last, t->next_poster++);
    if (r == 0)
        *result = json_pack("{s:O}", "posters", t->posters);
    return r;
}

void pc_thumbs_free(pc_thumbs *t)
{
    if (t == NULL)
        return;
    av_frame_free(&t->last);
    json_decref(t->posters);
    free(t);
}

/* ---- the thumbs task: assemble ---- */

static void vtt_time(double s, char *out, size_t len)
{
    long ms = lround(s * 1000);
    snprintf(out, len, "%02ld:%02ld:%02ld.%03ld", ms / 3600000, ms / 60000 % 60, ms / 1000 % 60, ms % 1000);
}

/* Copies raw tile |i| into |sheet| at (x, y); a missing tile stays black. */
static void place_tile(const char *dir, int i, int tw, int th, AVFrame *sheet, int x, int y)
{
    char path[4300];
    snprintf(path, sizeof(path), "%.4200s/tile-%05d.yuv", dir, i);
    char *raw = NULL;
    size_t len = 0, ysz = (size_t)tw * (size_t)th, csz = ysz / 4;
    if (pc_read_file(path, ysz + 2 * csz, &raw, &len) != 0)
        return;
    if (len == ysz + 2 * csz) {
        for (int r = 0; r < th; r++)
            memcpy(sheet->data[0] + (y + r) * sheet->linesize[0] + x, raw + (size_t)r * (size_t)tw, (size_t)tw);
        for (int r = 0; r < th / 2; r++) {
            memcpy(sheet->data[1] + (y / 2 + r) * sheet->linesize[1] + x / 2, raw + ysz + (size_t)r * (size_t)(tw / 2),
                   (size_t)tw / 2);
            memcpy(sheet->data[2] + (y / 2 + r) * sheet->linesize[2] + x / 2,
                   raw + ysz + csz + (size_t)r * (size_t)(tw / 2), (size_t)tw / 2);
        }
    }
    free(raw);
}

int pc_task_thumbs(pc_job *j)
{
    json_t *plan = json_loads(j->plan != NULL ? j->plan : "", 0, NULL);
    json_t *in = json_loads(j->inputs != NULL ? j->inputs : "{}", 0, NULL);
    json_t *th = json_object_get(plan, "thumbs");
    pc_buf vtt;
    pc_buf_init(&vtt, (size_t)4 << 20);
    AVFrame *sheet = NULL;
    if (!json_is_object(th)) {
        json_decref(plan);
        json_decref(in);
        return pc_job_fail(j, PC_EINTERNAL, 1, "internal_error", "the plan has no thumbnails");
    }
    double duration = pc_json_num(plan, "duration", 0), interval = pc_json_num(th, "interval", 2);
    int tiles = (int)pc_json_int(th, "tiles", 1), tw = (int)pc_json_int(th, "tile_width", 160),
        tht = (int)pc_json_int(th, "tile_height", 90);
    char dir[4300], out[4300];
    snprintf(dir, sizeof(dir), "%s/thumbs", j->work_dir);
    snprintf(out, sizeof(out), "%s/thumbs", j->out_dir);
    int r = pc_mkdirs(out);
    if (r != 0) {
        pc_job_fail(j, r, 0, "io_error", "cannot create %s", out);
        goto done;
    }
    /* the most detailed poster candidate any chunk captured */
    int best = -1;
    double bestvar = -1;
    const char *key;
    json_t *res;
    json_object_foreach(in, key, res)
    {
        const char *k;
        json_t *var;
        json_object_foreach(json_object_get(json_object_get(res, "thumbs"), "posters"), k, var)
        {
            if (json_number_value(var) > bestvar) {
                bestvar = json_number_value(var);
                best = atoi(k);
            }
        }
    }
    if (best < 0) {
        pc_job_fail(j, PC_EUNDECODABLE, 1, "undecodable", "no poster frame was captured");
        goto done;
    }
    static const char *const shapes[] = {"16x9", "2x3"};
    for (int s = 0; s < 2; s++) {
        /* copied, not moved: the task can run again (after a crash or a retry) with the same inputs */
        char from[4400], to[4400], *data = NULL;
        size_t len = 0;
        snprintf(from, sizeof(from), "%s/poster-%s-%d.webp", dir, shapes[s], best);
        snprintf(to, sizeof(to), "%s/poster-%s.webp", out, shapes[s]);
        r = pc_read_file(from, (size_t)16 << 20, &data, &len);
        if (r == 0)
            r = pc_write_file(to, data, len);
        free(data);
        if (r != 0) {
            pc_job_fail(j, r, 0, "io_error", "cannot publish the poster %s", from);
            goto done;
        }
    }
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
                goto done;
            }
        }
        int x = in_sheet % COLS * tw, y = in_sheet / COLS * tht;
        place_tile(dir, i, tw, tht, sheet, x, y);
        double at = i * interval;
        char a[32], b[32];
        vtt_time(at, a, sizeof(a));
        vtt_time(at + interval < duration ? at + interval : duration, b, sizeof(b));
        r = pc_buf_printf(&vtt, "%s --> %s\nsprite-%d.webp#xywh=%d,%d,%d,%d\n\n", a, b, sheets, x, y, tw, tht);
        if (in_sheet == COLS * ROWS - 1 || i == tiles - 1) {
            char path[4400];
            snprintf(path, sizeof(path), "%s/sprite-%d.webp", out, sheets++);
            if (write_webp(j, sheet, path) != 0)
                goto done;
        }
        atomic_store(&j->progress, 950 * (i + 1) / tiles);
    }
    char path[4400];
    snprintf(path, sizeof(path), "%s/sprite.vtt", out);
    if (r != 0 || (r = pc_write_file(path, vtt.data, vtt.len)) != 0) {
        pc_job_fail(j, r != 0 ? r : PC_ENOMEM, 0, "io_error", "cannot write sprite.vtt");
        goto done;
    }
    json_t *result = json_pack("{s:s, s:s, s:s, s:i, s:f, s:i, s:i}", "poster_16x9", "thumbs/poster-16x9.webp", "poster_2x3",
                               "thumbs/poster-2x3.webp", "sprite_vtt", "thumbs/sprite.vtt", "sprites", sheets, "interval",
                               interval, "tile_width", tw, "tile_height", tht);
    j->result = pc_json_dump(result);
    json_decref(result);
    atomic_store(&j->progress, 1000);
done:
    av_frame_free(&sheet);
    pc_buf_clear(&vtt);
    json_decref(plan);
    json_decref(in);
    return j->err;
}
