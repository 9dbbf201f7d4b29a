/*
 * Thumbnails without a second decode: every encode chunk offers each
 * top-rung frame it encodes (already scaled and rotated) to a capture
 * object, which keeps the frames the plan asks for (a sprite tile every
 * |interval| seconds, five poster candidates at 10%..90%) as small files in
 * the work directory. The light "thumbs" task then assembles the sprite
 * sheets and their WebVTT index and keeps the most detailed poster.
 */
#ifndef PC_ORIGIN_THUMBS_H
#define PC_ORIGIN_THUMBS_H

#include <jansson.h>
#include <libavutil/frame.h>

#include "job.h"

typedef struct pc_thumbs pc_thumbs;

/* Capture state for the chunk covering output ticks [start, end) of |plan|. NULL when the plan has no thumbnails. */
pc_thumbs *pc_thumbs_new(pc_job *j, const json_t *plan, int64_t start, int64_t end);
/* Offers the top-rung frame (yuv420p) shown at |ticks|; frames come in increasing order. */
int pc_thumbs_offer(pc_thumbs *t, const AVFrame *top, int64_t ticks) PC_MUST_CHECK;
/* Captures what is still missing from the last frame and returns {"posters": {"<k>": variance}}. */
int pc_thumbs_finish(pc_thumbs *t, json_t **result) PC_MUST_CHECK;
void pc_thumbs_free(pc_thumbs *t);

#endif
