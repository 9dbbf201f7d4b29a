/*
 * A video as the peer's engine sees it: one rung per video rendition of the signed manifest, and for
 * each segment index one "composite" segment, the video segment's bytes followed by the audio
 * segment's (audio segment s holds the audio of video segment s, docs/origin.md). So audio travels
 * with video, through the same scheduling, peer links and verification, and peers agree on byte
 * offsets without another table. The composite's hash is the video segment's BLAKE2b-256 when the
 * video has no audio, else BLAKE2b-256("peercdn composite v1" 0x00 | video hash | audio hash). Init
 * segments are composed the same way. docs/protocol.md, "Composite segments".
 */
#ifndef PC_PEER_MEDIA_H
#define PC_PEER_MEDIA_H

#include <stddef.h>
#include <stdint.h>

#include "pc_engine.h"
#include "pc_manifest.h"

typedef struct pc_part {
    const char *url; /* relative to p2p.json */
    uint32_t offset; /* within the composite */
    uint32_t size;
    const uint8_t *hash;
} pc_part;

typedef struct pc_peer_media {
    pc_media m;                       /* what the engine borrows */
    const pc_manifest *mf;            /* borrowed */
    uint32_t rend[PC_RUNGS_MAX];      /* manifest rendition of each rung */
    int audio;                        /* manifest rendition of the audio, -1 without */
    uint64_t duration_us;
    uint32_t *dur;                    /* n_segments */
    uint32_t *size[PC_RUNGS_MAX];     /* composite sizes */
    uint8_t *hash[PC_RUNGS_MAX];      /* composite hashes, 32 × n_segments */
    uint8_t init_hash[PC_RUNGS_MAX][32];
} pc_peer_media;

/* Builds the composite view of |mf| (which must outlive it). PC_EINVAL with a sentence in |why| when
 * the manifest cannot be played: no video rendition, more than PC_RUNGS_MAX, rungs whose segment
 * counts or durations differ, more than one audio track or one of another length, a composite over
 * 4 GiB. PC_ENOMEM. */
int pc_peer_media_init(pc_peer_media *pm, const pc_manifest *mf, const char **why) PC_MUST_CHECK;
void pc_peer_media_clear(pc_peer_media *pm);
/* The parts of composite segment |seg| (PC_SEG_INIT: the init segment) of |rung|: 1 or 2. */
int pc_peer_media_parts(const pc_peer_media *pm, uint32_t rung, uint32_t seg, pc_part parts[2]);
/* Composite size of a segment (PC_SEG_INIT: the init segment). */
uint32_t pc_peer_media_size(const pc_peer_media *pm, uint32_t rung, uint32_t seg);
/* The composite hash of |len| bytes held for |seg| of |rung|; when |len| is not the composite's size
 * the result cannot match. Cannot fail. */
void pc_peer_media_hash(const pc_peer_media *pm, uint32_t rung, uint32_t seg, const uint8_t *data, size_t len,
                        uint8_t out[32]);
/* The rung of manifest rendition |id|, or -1. */
int pc_peer_media_rung(const pc_peer_media *pm, const char *id);

#endif
