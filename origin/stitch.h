/*
 * stitch: copies of uploads whose timestamps cannot be used as they are; the pipeline reads the copy
 * (work/<id>/<name>, the plan's "copy") instead of the upload.
 *
 * Recordings joined into one MPEG-TS or -PS file (cat part1.ts part2.ts, a DVR's split
 * recording, a capture across a channel change) restart their clock where the parts meet, or leap
 * ahead. Probe finds the first such jump; this module then copies the video and audio packets,
 * unchanged, into a Matroska file in the work directory with each part's times moved to follow the
 * part before, as `ffmpeg -i joined.ts` plays it, and the pipeline goes on from that copy.
 *
 * Each stream is cut into parts by its own jumps (a demuxer may hand out the last packets of one
 * part after the first of the next), and a part's audio goes with the video part whose bytes in the
 * file it shares. Every video part after the first is moved to be shown right after the previous
 * one's last frame (its first decode times moved up to follow the previous part's last where they
 * would not), on the first part's frame grid, without the packets a decoder
 * drops at its start (before its first keyframe, and that GOP's leading pictures); its audio moves with it, so each
 * part keeps its own lip sync. Audio usually starts a little before the video and outlasts it, so a
 * part's audio may begin before the previous part's ends: the packets that would decode before the
 * last one copied go, and the audio task, told where each part's audio begins, trims what still
 * overlaps (or fills a gap with silence) to the sample there.
 */
#ifndef PC_ORIGIN_STITCH_H
#define PC_ORIGIN_STITCH_H

#include <stddef.h>
#include <stdint.h>

#include <libavutil/rational.h>

#include "job.h"

/* the copy, in the video's work directory; the plan's "stitched" says the tasks read it */
#define PC_STITCHED_NAME "stitched.mkv"
/* the copy of a video stream without timestamps (pc_copy_timed) */
#define PC_TIMED_NAME "timed.mp4"
#define PC_STITCH_MAX_PARTS 4096
/* a jump forward larger than this is a discontinuity too (ffmpeg's dts_delta_threshold), in µs */
#define PC_STITCH_GAP_US (10 * 1000000LL)
/* how near a time moved by the clock's wrap must come to the time before it to be taken for the wrap
 * (not a join whose clock restarted just after it), in µs */
#define PC_STITCH_WRAP_US (3 * 1000000LL)

/* Whether a packet at decode time |t| (µs) starts a new part of a stream whose last packet was at
 * |last| and whose part so far ends at |end|: its clock went back, or leapt ahead. */
static inline int pc_stitch_jump(int64_t last, int64_t end, int64_t t)
{
    return t < last || t > end + PC_STITCH_GAP_US;
}

/* The time |x| of a clock that wraps every |period| (MPEG's 33 bits of 90 kHz: 26.5 hours), moved by
 * a period when that brings it within |tol| of |ref|, the time before it, and it is not already:
 * libavformat unwraps a stream's clock around its first time only, not a later part's. |period| 0:
 * no wrap. INT64_MIN (AV_NOPTS_VALUE) stays. */
static inline int64_t pc_stitch_unwrap(int64_t x, int64_t ref, int64_t period, int64_t tol)
{
    if (period <= 0 || x == INT64_MIN || ref == INT64_MIN || (x >= ref - tol && x <= ref + tol))
        return x;
    if (x < ref && x + period >= ref - tol && x + period <= ref + tol)
        return x + period;
    if (x > ref && x - period >= ref - tol && x - period <= ref + tol)
        return x - period;
    return x;
}

/* One part of one stream, in µs of that part's own clock. */
typedef struct pc_stitch_part {
    int64_t first;  /* earliest presentation time (a packet without one: its decode time) */
    int64_t end;    /* latest presentation time plus duration */
    int64_t dfirst; /* earliest decode time (a packet without one: its presentation time) */
    int64_t dlast;  /* latest decode time */
    int64_t pos;   /* byte position of its first packet, or -1 */
    int64_t lpos;  /* byte position of its last packet, or -1 */
    int key;       /* video: its first packet is a keyframe (where a recording starts) */
    size_t owner;  /* the video part it goes with: a video part's own index; set for audio by pc_stitch_offsets */
} pc_stitch_part;

/*
 * Which of the video's jumps are joins, in |real| (k >= 1: between video parts k-1 and k). When
 * there is audio (|na| parts), a join is where the audio also jumps, starts or stops: each of the
 * audio's part boundaries counts for the video jump nearest to it in the file. A video jump the
 * audio runs on through is not one (a gap in the video alone, a frame whose time is off); moving
 * the video there would take it out of step with its sound. Where the audio only stops, or only
 * starts (a part without sound), the audio's first start and last end count too, when a video jump
 * is nearer to them in the file than the file's start or end. Without audio (or file positions), and
 * between two video parts neither of which has audio within its bytes, a join is a leap ahead
 * (PC_STITCH_GAP_US), a step back of more than a second, or a step back to a keyframe (a recording
 * starts with one; a single frame whose time is off does not).
 */
void pc_stitch_real_joins(const pc_stitch_part *v, size_t nv, const pc_stitch_part *a, size_t na, uint8_t *real);

/*
 * The offset (µs) to add to each of the |nv| video parts |v| (and the audio parts that go with it),
 * in |off|, and the video part each of the |na| audio parts |a| goes with: the one whose bytes in the
 * file overlap its most (or are nearest, or by index without file positions). Each part is shown
 * right after the one before; |frame_us| > 0 puts each part's first video frame on the grid of the
 * first part's frames. (Decode order across the join is the copy's: a part whose first frames decode
 * before the previous part's last has those decode times moved up, not the whole part.) off[0] is 0.
 */
void pc_stitch_offsets(const pc_stitch_part *v, size_t nv, pc_stitch_part *a, size_t na, double frame_us, int64_t *off);

/*
 * Copies stream |vidx| and |aidx| (-1: none) of |src| (opened with AVFMT_FLAG_* |fmt_flags|) into
 * the Matroska file |dst|, parts moved as above; |*joins| gets the |*njoins| times (µs, the copy's
 * clock) where an audio part after the first begins (free() it). Returns the number of parts the
 * video had, or fails |j| and returns -1.
 */
int pc_stitch(pc_job *j, const char *src, int fmt_flags, int vidx, int aidx, const char *dst, int64_t **joins,
              size_t *njoins);

/*
 * A raw H.264 or HEVC elementary stream (.h264, .265: what encoders, drones and DVRs export) has no
 * timestamps at all. Copies stream |vidx| of |src| into the MP4 file |dst| with the k-th packet in
 * decode order at k frames of |fps|, presentation time equal to decode time: a file whose times are
 * decode order, which probe then puts in order by decoding (probe.c, retime_scan). A stream some of
 * whose packets do carry a time is refused. Returns 0 or fails |j|.
 */
int pc_copy_timed(pc_job *j, const char *src, int fmt_flags, int vidx, AVRational fps, const char *dst);

#endif
