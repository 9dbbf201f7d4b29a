/* Ladder, timeline and segmentation planning; see ladder.h. */
#include "ladder.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const struct {
    int w, h, bitrate;
} apple[] = {
    {416, 234, 145000}, {640, 360, 365000}, {768, 432, 730000}, {960, 540, 2000000}, {1280, 720, 3000000}, {1920, 1080, 6000000},
};

/* Nearest even integer to |v|, but never above |max| (rounded down to even): no upscaling. */
static int even(double v, int max)
{
    int i = (int)lround(v / 2.0) * 2;
    int cap = max & ~1;
    if (i > cap)
        i = cap;
    return i < 2 ? 2 : i;
}

static void fill(pc_rung *r, int idx, int w, int h, double ref_pixels, int ref_bitrate, double fps)
{
    snprintf(r->id, sizeof(r->id), "v%d", idx);
    r->width = w;
    r->height = h;
    double br = ref_bitrate * ((double)w * h) / ref_pixels;
    if (fps > 31)
        br *= 1.5;
    if (br < 50000)
        br = 50000;
    r->bitrate = (int)(lround(br / 1000.0) * 1000);
    r->maxrate = r->bitrate * 3 / 2;
    r->bufsize = r->bitrate * 2;
}

int pc_ladder_plan(int disp_w, int disp_h, double fps, pc_rung out[PC_LADDER_MAX])
{
    if (disp_w < 2 || disp_h < 2)
        return 0;
    int portrait = disp_h > disp_w;
    int shortside = portrait ? disp_w : disp_h, longside = portrait ? disp_h : disp_w;
    double aspect = portrait ? (double)disp_h / disp_w : (double)disp_w / disp_h;
    int n = 0;
    for (size_t i = 0; i < sizeof(apple) / sizeof(apple[0]); i++) {
        if (apple[i].h > shortside)
            break;
        int s = apple[i].h, l = even(s * aspect, longside);
        fill(&out[n], n, portrait ? s : l, portrait ? l : s, (double)apple[i].w * apple[i].h, apple[i].bitrate, fps);
        n++;
    }
    if (n == 0) {
        int s = even(shortside, shortside), l = even(shortside * aspect, longside);
        fill(&out[0], 0, portrait ? s : l, portrait ? l : s, (double)apple[0].w * apple[0].h, apple[0].bitrate, fps);
        n = 1;
    }
    return n;
}

int pc_decimation(int fps_num, int fps_den)
{
    if (fps_num <= 0 || fps_den <= 0)
        return 1;
    int64_t k = ((int64_t)fps_num + (int64_t)PC_MAX_FPS * fps_den - 1) / ((int64_t)PC_MAX_FPS * fps_den); /* ceil */
    /* 60000/1001 and rates a rounding error above 60 stay as they are */
    if ((double)fps_num / fps_den < PC_MAX_FPS + 0.5)
        k = 1;
    return k < 1 ? 1 : k > 64 ? 64 : (int)k;
}

void pc_timeline_init(pc_timeline *t, int cfr, int64_t first_pts, int tb_num, int tb_den, int fps_num, int fps_den)
{
    memset(t, 0, sizeof(*t));
    t->cfr = cfr;
    t->first_pts = first_pts;
    t->tb_num = tb_num;
    t->tb_den = tb_den;
    t->fps_num = fps_num;
    t->fps_den = fps_den;
    t->timescale = 90000;
    t->decim = 1;
    if (cfr) {
        /* 90 kHz when a frame is a whole number of ticks (24, 25, 30, 50, 60, 29.97); else the rate's numerator */
        if ((int64_t)90000 * fps_den % fps_num == 0)
            t->frame_ticks = (int64_t)90000 * fps_den / fps_num;
        else {
            t->timescale = fps_num;
            t->frame_ticks = fps_den;
        }
    }
}

/* round(a * b / c) for non-negative b, c without overflow for our ranges */
__extension__ typedef __int128 i128;

static int64_t muldiv_round(int64_t a, int64_t b, int64_t c)
{
    i128 v = (i128)a * b;
    i128 half = c / 2;
    return (int64_t)(v >= 0 ? (v + half) / c : -((-v + half) / c));
}

int64_t pc_timeline_map(const pc_timeline *t, int64_t pts)
{
    int64_t rel = pts - t->first_pts;
    if (t->cfr) {
        int64_t idx = muldiv_round(rel, (int64_t)t->tb_num * t->fps_num, (int64_t)t->tb_den * t->fps_den);
        return idx * t->frame_ticks;
    }
    return muldiv_round(rel, (int64_t)t->tb_num * t->timescale, t->tb_den);
}

int pc_timeline_keeps(const pc_timeline *t, int64_t ticks)
{
    return t->decim <= 1 || t->frame_ticks <= 0 || (ticks / t->frame_ticks) % t->decim == 0;
}

size_t pc_timeline_ticks(const pc_timeline *t, int64_t *pts, size_t n, int64_t *ticks)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t tk = pc_timeline_map(t, pts[i]);
        if (!pc_timeline_keeps(t, tk))
            continue;
        if (kept > 0 && tk <= ticks[kept - 1])
            tk = ticks[kept - 1] + 1; /* VFR rounding collisions */
        pts[kept] = pts[i];
        ticks[kept++] = tk;
    }
    return kept;
}

int64_t pc_timeline_unmap(const pc_timeline *t, int64_t ticks)
{
    return t->first_pts + muldiv_round(ticks, t->tb_den, (int64_t)t->tb_num * t->timescale);
}

size_t pc_segments_plan(const int64_t *ticks, const int64_t *pts, size_t n, int64_t seg_ticks, pc_segment *segs)
{
    size_t ns = 0;
    int64_t boundary = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || ticks[i] >= boundary) {
            segs[ns].t = ticks[i];
            segs[ns].pts = pts[i];
            segs[ns].frames = 0;
            ns++;
            boundary = (ticks[i] / seg_ticks + 1) * seg_ticks;
        }
        segs[ns - 1].frames++;
    }
    return ns;
}

/* Source pts distance from the last keyframe at or before |pts| (how much a decoder starting there discards). */
static int64_t lead_in(const int64_t *keys, size_t nkeys, int64_t pts)
{
    size_t lo = 0, hi = nkeys;
    while (lo < hi) { /* first key > pts */
        size_t mid = (lo + hi) / 2;
        if (keys[mid] <= pts)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == 0 ? INT64_MAX / 4 : pts - keys[lo - 1];
}

size_t pc_chunks_plan(const pc_segment *segs, size_t nsegs, int64_t target_ticks, size_t workers, const int64_t *keys,
                      size_t nkeys, int64_t shift_min, size_t *chunk_first)
{
    if (nsegs == 0)
        return 0;
    if (workers < 1)
        workers = 1;
    /* how many chunks: about |target_ticks| each, rounded up to a multiple of the workers so every round is full */
    int64_t span = segs[nsegs - 1].t - segs[0].t;
    size_t nc = target_ticks > 0 ? (size_t)(span / target_ticks) + 1 : nsegs;
    if (nc > workers)
        nc = (nc + workers - 1) / workers * workers;
    if (nc > nsegs)
        nc = nsegs;
    /* segments spread evenly, larger chunks first (they are claimed first) */
    size_t base = nsegs / nc, extra = nsegs % nc, at = 0;
    for (size_t c = 0; c < nc; c++) {
        chunk_first[c] = at;
        at += base + (c < extra ? 1 : 0);
    }
    /* a boundary where the chunk's decoder would first discard more than |shift_min| of source (a long source
     * GOP) moves by one segment to where that lead-in is shortest */
    for (size_t c = 1; keys != NULL && nkeys > 0 && c < nc; c++) {
        size_t b = chunk_first[c];
        int64_t cost = lead_in(keys, nkeys, segs[b].pts);
        if (cost <= shift_min)
            continue;
        size_t best = b;
        if (b - 1 > chunk_first[c - 1] && lead_in(keys, nkeys, segs[b - 1].pts) < cost) {
            best = b - 1;
            cost = lead_in(keys, nkeys, segs[b - 1].pts);
        }
        size_t limit = c + 1 < nc ? chunk_first[c + 1] : nsegs;
        if (b + 1 < limit && lead_in(keys, nkeys, segs[b + 1].pts) < cost)
            best = b + 1;
        chunk_first[c] = best;
    }
    return nc;
}

int pc_is_gop_start(int64_t prev, int64_t t, int64_t gop_ticks)
{
    if (prev < 0)
        return 1;
    return t / gop_ticks > prev / gop_ticks;
}
