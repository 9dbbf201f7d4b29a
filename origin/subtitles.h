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

/* What a file added to a published video may be (FFmpeg demuxers): SubRip, WebVTT, ASS/SSA. */
#define PC_SUBS_FILE_FORMATS "srt,webvtt,ass"
#define PC_SUBS_FILE_MAX (1u << 20) /* bytes: the origin's request bodies (a feature film's SubRip: ~100 KB) */
/* Opens |path| as a subtitle file: only PC_SUBS_FILE_FORMATS, only from the file itself (a playlist
 * demuxer would open others); |j| (or NULL) can cancel. An AVERROR, or 0. */
int pc_subs_open_file(const char *path, AVFormatContext **out, pc_job *j);
/* The plan's entry for the subtitle file |path| added to a published video as revision |rev|: {file,
 * codec, language (cleaned |language|), name (|title|, else the language's name; unique among |subs|),
 * default, forced, added}; NULL with |why| when |path| is not a SubRip, WebVTT or ASS/SSA file with at
 * least one cue within the video of |plan| that the task's conversion keeps, or when its cues would not
 * fit the video's segments (the task would leave it out). */
json_t *pc_subs_added_entry(const json_t *subs, const char *path, const char *language, const char *title, int rev,
                            const json_t *plan, char *why, size_t whylen);

#endif
