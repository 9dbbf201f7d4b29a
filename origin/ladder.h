/*
 * Pure planning: the ABR ladder for a source, the output timeline (how
 * source timestamps map to output ticks), and segment/chunk boundaries.
 * No I/O; unit-tested in tests/unit/test_ladder.c.
 */
#ifndef PC_ORIGIN_LADDER_H
#define PC_ORIGIN_LADDER_H

#include <stddef.h>
#include <stdint.h>

#define PC_LADDER_MAX 6

typedef struct pc_rung {
    char id[8];
    int width, height;
    int bitrate, maxrate, bufsize; /* bits per second */
} pc_rung;

/*
 * Plans the ladder for a source displayed at |disp_w| x |disp_h| (after
 * rotation and pixel aspect) at |fps|: Apple's HLS authoring ladder
 * (416x234@145k ... 1920x1080@6000k) scaled to the source's aspect ratio,
 * never above the source's short side; bitrates scale with pixel count and
 * by 1.5 above 31 fps. A source smaller than the lowest rung gets one rung
 * at its own size. Dimensions are even. Returns the number of rungs (≥ 1)
 * written to |out| in ascending order, or 0 for degenerate input.
 */
int pc_ladder_plan(int disp_w, int disp_h, double fps, pc_rung out[PC_LADDER_MAX]);

/* Highest output frame rate (Apple's HLS authoring specification; YouTube's cap too). */
#define PC_MAX_FPS 60
/*
 * Frame-rate decimation for a constant-rate source at |fps_num|/|fps_den|:
 * every k-th frame is kept, the smallest k that brings the rate to at most
 * PC_MAX_FPS (120 -> 60, 119.88 -> 59.94, 240 -> 60, 100 -> 50, 144 -> 48).
 * Returns k (1 when the rate is within the cap or degenerate).
 */
int pc_decimation(int fps_num, int fps_den);

/* Maps source timestamps to output ticks. */
typedef struct pc_timeline {
    int cfr;             /* constant frame rate: frame k lands at k*frame_ticks */
    int64_t first_pts;   /* source pts of the first frame */
    int tb_num, tb_den;  /* source stream time base */
    int fps_num, fps_den;
    int64_t timescale;   /* output ticks per second */
    int64_t frame_ticks; /* CFR: ticks per frame */
    int decim;           /* CFR: only every decim-th frame slot is kept (pc_decimation); 1 after init */
} pc_timeline;

/* Fills timescale and frame_ticks for the given mode and rate. */
void pc_timeline_init(pc_timeline *t, int cfr, int64_t first_pts, int tb_num, int tb_den, int fps_num, int fps_den);
/* Output ticks of a source pts (CFR: rounded to the nearest frame slot). */
int64_t pc_timeline_map(const pc_timeline *t, int64_t pts);
/* Whether the frame at output |ticks| (from pc_timeline_map) is kept: not one that decimation drops.
 * Plan and encode both ask this, so they drop the same frames. */
int pc_timeline_keeps(const pc_timeline *t, int64_t ticks);
/* The output times of |n| source frames (frames.bin: sorted, distinct pts): the frames decimation keeps,
 * each mapped and moved just past the one before where two map to one tick (VFR rounding). Their pts are
 * packed in place in |pts| and their ticks written to |ticks|; returns how many are kept. The plan counts
 * a segment's frames with this, and encode places the frames it could not decode by it. */
size_t pc_timeline_ticks(const pc_timeline *t, int64_t *pts, size_t n, int64_t *ticks);
/* Source pts that maps closest to |ticks| (for seeking). */
int64_t pc_timeline_unmap(const pc_timeline *t, int64_t ticks);

typedef struct pc_segment {
    int64_t t;   /* output ticks of the first frame */
    int64_t pts; /* its source pts */
    int64_t frames;
} pc_segment;

/*
 * Splits the sorted frame times |ticks| (n frames, output ticks) into
 * segments that start at the first frame at or after each multiple of
 * |seg_ticks| (empty intervals are skipped). |segs| must hold n entries;
 * |pts| gives each frame's source pts. Returns the segment count.
 */
size_t pc_segments_plan(const int64_t *ticks, const int64_t *pts, size_t n, int64_t seg_ticks, pc_segment *segs);
/*
 * Groups segments into chunks for parallel encoding: about |target_ticks|
 * each, their count rounded up to a multiple of |workers| and segments
 * spread evenly (larger chunks first), so the workers finish together. A
 * chunk's decoder starts at the source keyframe before the chunk and
 * discards the frames up to it: with |keys| (sorted source pts of the
 * source's keyframes; may be NULL) a boundary whose lead-in exceeds
 * |shift_min| (source pts units) moves by one segment to where the lead-in
 * is shortest. |chunk_first| (|nsegs| entries) receives each chunk's first
 * segment; returns the count.
 */
size_t pc_chunks_plan(const pc_segment *segs, size_t nsegs, int64_t target_ticks, size_t workers, const int64_t *keys,
                      size_t nkeys, int64_t shift_min, size_t *chunk_first);
/* Is the frame at |t| (previous frame at |prev|, or -1) the first of a GOP of |gop_ticks|? */
int pc_is_gop_start(int64_t prev, int64_t t, int64_t gop_ticks);

#endif
