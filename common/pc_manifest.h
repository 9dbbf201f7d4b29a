/*
 * p2p.json: the origin-signed description of a video's renditions, with the
 * size and BLAKE2b-256 of every init segment and media segment, and the
 * tracker's URL and Ed25519 key. The signature (p2p.json.sig) is base64 of
 * the 64-byte Ed25519 signature over p2p.json's exact bytes.
 *
 * This codec parses and verifies it with stated limits; it borrows nothing
 * after returning (the parsed form owns its strings).
 */
#ifndef PC_MANIFEST_H
#define PC_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "pc_crypto.h"
#include "pc_error.h"

#define PC_MANIFEST_MAX_BYTES (16u << 20)
#define PC_MANIFEST_MAX_RENDITIONS 16
#define PC_MANIFEST_MAX_SEGMENTS 20000 /* per rendition */
#define PC_MANIFEST_MAX_URL 256
#define PC_MANIFEST_MAX_TRACKER_URL 2048 /* tracker.url, in characters */
#define PC_MANIFEST_MAX_SEGMENT_BYTES (64u << 20)

typedef struct pc_mf_file {
    char *url; /* relative to p2p.json */
    uint64_t size;
    uint8_t blake2b[PC_B2_LEN];
    double duration; /* seconds; 0 for init segments */
} pc_mf_file;

typedef struct pc_mf_rendition {
    char *id;
    int audio;
    int width, height;
    uint32_t bandwidth;
    char *codecs;
    pc_mf_file init;
    pc_mf_file *segments;
    size_t nsegments;
} pc_mf_rendition;

/* A text track (optional "subtitles"): the whole WebVTT file, fetched from the CDN and checked like a
 * segment; peers do not exchange it. */
#define PC_MANIFEST_MAX_SUBTITLES 16
#define PC_MANIFEST_MAX_SUBTITLE_BYTES (16u << 20)
typedef struct pc_mf_subtitle {
    char *id; /* "s0": [a-z0-9]{1,16}, the track's directory */
    pc_mf_file file;
} pc_mf_subtitle;

typedef struct pc_manifest {
    char *video;
    pc_mf_rendition *renditions;
    size_t nrenditions;
    pc_mf_subtitle *subtitles;
    size_t nsubtitles;
    char *tracker_url; /* NULL when absent */
    uint8_t tracker_pk[PC_ED25519_PK_LEN];
    int has_tracker;
} pc_manifest;

/* Verifies |sig_b64| (the content of p2p.json.sig) over |json|. 0, PC_EBADSIG or PC_EPARSE. */
int pc_manifest_verify(const uint8_t origin_pk[PC_ED25519_PK_LEN], const char *json, size_t len, const char *sig_b64,
                       size_t sig_len) PC_MUST_CHECK;
/* Parses |json| (≤ PC_MANIFEST_MAX_BYTES). PC_ETOOBIG over a limit, PC_EPARSE on a bad document. */
int pc_manifest_parse(const char *json, size_t len, pc_manifest **out) PC_MUST_CHECK;
void pc_manifest_free(pc_manifest *m);

#endif
