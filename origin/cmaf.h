/*
 * CMAF fragmented-MP4 writer: init segments (ftyp+moov) for an H.264 video
 * or AAC audio track, and media segments (styp+moof+mdat, one fragment per
 * segment) with a version-1 trun: decode times are the sorted presentation
 * times, so tfdt equals the segment's earliest presentation time and B-frame
 * reordering shows up as signed composition offsets. Output is written into
 * a caller's pc_buf; nothing here does I/O. Also converts x264's Annex B
 * output into avcC / length-prefixed samples.
 */
#ifndef PC_ORIGIN_CMAF_H
#define PC_ORIGIN_CMAF_H

#include <stddef.h>
#include <stdint.h>

#include "pc_buf.h"

typedef struct pc_cmaf_sample {
    uint32_t duration; /* ticks until the next sample's decode time */
    uint32_t size;
    int32_t cto; /* presentation - decode time */
    uint8_t sync;
} pc_cmaf_sample;

typedef struct pc_cmaf_track {
    int video; /* 1 video (avc1), 0 audio (mp4a) */
    uint32_t timescale;
    uint16_t width, height;          /* video */
    uint16_t channels;               /* audio */
    uint32_t sample_rate;            /* audio */
    uint32_t priming;                /* audio: encoder delay in samples (edit list) */
    const uint8_t *config;           /* avcC payload or AudioSpecificConfig */
    size_t config_len;
    uint32_t max_bitrate, avg_bitrate, buffer_size;
} pc_cmaf_track;

/* Appends an init segment. PC_ETOOBIG/PC_ENOMEM from the buffer, PC_EINVAL on a bad track. */
int pc_cmaf_write_init(pc_buf *out, const pc_cmaf_track *t) PC_MUST_CHECK;
/*
 * Appends a media segment: |n| samples whose data are concatenated in
 * |data| (|len| bytes = sum of sizes). |seq| ≥ 1 is the fragment sequence
 * number, |tfdt| the decode time of the first sample.
 */
int pc_cmaf_write_segment(pc_buf *out, int video, uint32_t seq, uint64_t tfdt, const pc_cmaf_sample *s, size_t n,
                          const uint8_t *data, size_t len) PC_MUST_CHECK;

/*
 * Builds an avcC payload from Annex B parameter sets (x264 extradata) and
 * the RFC 6381 codecs string ("avc1.64001f"). PC_EPARSE without SPS/PPS.
 */
int pc_avcc_from_annexb(const uint8_t *in, size_t len, pc_buf *avcc, char codecs[32]) PC_MUST_CHECK;
/* Converts an Annex B access unit to 4-byte length-prefixed NAL units, dropping AUD, SPS and PPS. */
int pc_annexb_to_lp(const uint8_t *in, size_t len, pc_buf *out) PC_MUST_CHECK;

/* Minimal reader for tests and verification: finds the first box |type| at the top level. */
const uint8_t *pc_mp4_find_box(const uint8_t *data, size_t len, const char type[4], size_t *box_len);

#endif
