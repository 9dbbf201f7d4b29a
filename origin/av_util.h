/* Small FFmpeg helpers shared by the pipeline tasks. */
#ifndef PC_ORIGIN_AV_UTIL_H
#define PC_ORIGIN_AV_UTIL_H

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "job.h"
#include "pc_buf.h"
#include "pc_fs.h"

/* Opens |path| for demuxing with |j|'s cancel flag as interrupt callback and AVFMT_FLAG_* |fmt_flags|
 * (AVFMT_FLAG_GENPTS for a source some of whose video packets lack a pts: the plan's "genpts").
 * Returns an AVERROR or 0. */
int pc_av_open(pc_job *j, const char *path, int fmt_flags, AVFormatContext **out);
/* The same with demuxer options |opts| (format_whitelist...); |j| may be NULL (nothing can cancel it). */
int pc_av_open_with(pc_job *j, const char *path, int fmt_flags, AVDictionary **opts, AVFormatContext **out);
/* Opens the video's source as |plan| says: the copy in the work directory its "copy" names (stitch.h),
 * else the upload; with AVFMT_FLAG_GENPTS when it has "genpts". Returns an AVERROR or 0. */
int pc_av_open_source(pc_job *j, const json_t *plan, AVFormatContext **out);
/* Writes |b| to |rel| under the job's output directory (atomically); on failure records it in the job
 * ("cannot write REL"). Returns 0 or the PC_E* code. */
int pc_job_write(pc_job *j, const char *rel, const pc_buf *b);
/* The same for a file served as immutable (an init segment, a subtitle track's WebVTT): a revision keeps
 * the one its copy of the publication has (another build could write other bytes under the same URL). */
int pc_job_write_kept(pc_job *j, const char *rel, const pc_buf *b);
/* The result of |in|'s dependency of |kind| ("audio", "package": a task has one of each such kind; a
 * revision's tasks have its number as their arg, so the key is "kind:N"), or NULL. */
json_t *pc_job_input(const json_t *in, const char *kind);
/* Index of the main video stream (attached pictures excluded) or -1. */
int pc_av_video_stream(const AVFormatContext *fmt);
/* Opens a decoder for stream |idx| with |threads| threads. Returns an AVERROR or 0. */
int pc_av_open_decoder(const AVFormatContext *fmt, int idx, int threads, AVCodecContext **out);
/* Whether libav error |averr| says something about this machine's state rather than the input (out of
 * memory or descriptors, an I/O error, no permission, a thread that could not start): worth running the
 * task again (a recoverable failure), never a verdict on the video. */
int pc_av_err_transient(int averr);
/* pc_av_feed modes */
enum {
    /* for a source whose timestamps are decode order (see probe.c): every frame is returned, those
     * the container marks as outside its edit list too, and a packet without pts is given its dts,
     * so each frame out of the decoder is named by its own packet's time */
    PC_FEED_DECODE_ORDER = 1,
    /* after a seek: packets before the stream's next keyframe are skipped (a demuxer that seeks by
     * timestamp search, as MPEG-TS does, lands mid-GOP); cleared at that keyframe */
    PC_FEED_WAIT_KEY = 2,
    /* set (by pc_av_feed) when a packet later than wait_until came while waiting for a keyframe */
    PC_FEED_KEY_MISSED = 4,
};
typedef struct pc_feed {
    unsigned mode;      /* PC_FEED_* */
    int64_t wait_until; /* with PC_FEED_WAIT_KEY, in the stream's time base */
} pc_feed;
/* pc_av_feed's |*eof| once set */
enum { PC_FEED_END = 1, PC_FEED_READ_ERROR = 2 };
/*
 * Reads the next packet and sends it to |dec| if it belongs to stream |idx|;
 * at the end of input (or on a read error) sends the flush packet once and
 * sets |*eof| (PC_FEED_END, or PC_FEED_READ_ERROR: a task then fails as a
 * recoverable I/O error rather than judge the frames it got). Does nothing
 * once |*eof| is set. |pkt| is scratch space. |f| (may be NULL) is updated
 * as described above.
 */
void pc_av_feed(AVFormatContext *fmt, AVCodecContext *dec, int idx, AVPacket *pkt, int *eof, pc_feed *f);

/* av_err2str into a caller buffer. */
const char *pc_av_err(int averr, char *buf, size_t len);
/* Rotation to apply for display (0, 90, 180, 270 clockwise) from the stream's display matrix. */
int pc_av_rotation(const AVStream *st);

/* frames.bin: the sorted source pts of every video frame (little-endian int64 array); keyframes.bin
 * likewise; retime.bin (files whose timestamps are decode order): (packet pts, presentation pts) pairs
 * sorted by packet pts. */
int pc_frames_write(const char *path, const int64_t *pts, size_t n) PC_MUST_CHECK;
int pc_frames_read(const char *path, int64_t **pts, size_t *n) PC_MUST_CHECK;


#endif
