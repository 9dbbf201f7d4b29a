/* Text subtitle tracks as WebVTT for HLS and DASH (subtitles.c). */
#ifndef PC_ORIGIN_SUBTITLES_H
#define PC_ORIGIN_SUBTITLES_H

#include <jansson.h>
#include <libavformat/avformat.h>

#include "job.h"

#define PC_SUBS_MAX 16 /* text subtitle tracks taken from one source */

/* The source's text subtitle streams, at most PC_SUBS_MAX: [{index, codec, language (BCP 47-looking or
 * ""), name (the stream's title, else its language, else "Subtitles N"; unique), default, forced}]. */
json_t *pc_subs_probe(const AVFormatContext *fmt);
/* The task: the plan's "subtitles" as WebVTT files in the output (sK/all.vtt, sK/seg-NNNNN.vtt,
 * sK/index.m3u8). Result {"tracks": [{id, language, name, default, forced, cues, bandwidth}]}: a stream
 * that cannot be decoded is left out (logged), not a failure of the video. */
int pc_task_subtitles(pc_job *j);

#endif
