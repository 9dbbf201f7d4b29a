/*
 * Player model: what a viewer experiences, given when media becomes playable.
 *
 * Pure code shared by the headless peer and the simulator. Time is passed in (microseconds on the
 * caller's clock); the model never reads a clock. The caller tells it how far the contiguous playable
 * buffer reaches (pc_player_set_buffer) and advances it (pc_player_advance); the player plays in real
 * time, stalls at the exact moment the playhead reaches the end of the buffer, and resumes when
 * enough is buffered again. Start-up delay, stalls and stall time are measured here, so every
 * component reports them the same way.
 *
 * States: IDLE → STARTING → PLAYING ⇄ STALLED → ENDED; SEEKING after a seek (its wait is counted as
 * seek time, not as a stall); QUIT at any time.
 */
#ifndef PC_PLAYER_H
#define PC_PLAYER_H

#include <stdint.h>

#define PC_NEVER UINT64_MAX

typedef enum { PC_PLAYER_IDLE, PC_PLAYER_STARTING, PC_PLAYER_PLAYING, PC_PLAYER_STALLED, PC_PLAYER_SEEKING,
               PC_PLAYER_ENDED, PC_PLAYER_QUIT } pc_player_state;

typedef struct pc_player {
    pc_player_state state;
    uint64_t duration_us;  /* content length */
    uint64_t start_us;     /* buffer needed to start or to finish a seek (or the rest of the content) */
    uint64_t resume_us;    /* buffer needed to resume after a stall */
    uint64_t pos_us;       /* playhead, content time */
    uint64_t buffer_end_us; /* contiguous playable content from the playhead reaches here */
    uint64_t t_us;         /* caller's clock at the last update */
    uint64_t requested_at; /* when play or the last seek was asked for */
    uint64_t stall_began;
    /* results */
    uint64_t startup_us;   /* PC_NEVER until playback starts */
    uint32_t stalls, seeks;
    uint64_t stall_us, seek_wait_us, played_us;
} pc_player;

/* |duration_us| > 0. Cannot fail. */
void pc_player_init(pc_player *p, uint64_t duration_us, uint64_t start_us, uint64_t resume_us);
/* IDLE → STARTING at |now|, playhead at 0. */
void pc_player_play(pc_player *p, uint64_t now);
/* Brings the model to |now| (≥ the last time it was given): plays, stalls exactly when the playhead
 * reaches the buffer end, ends exactly at the content end. */
void pc_player_advance(pc_player *p, uint64_t now);
/* The contiguous playable buffer now reaches |end_us| (content time; it may also shrink: after a seek,
 * or when a copy is let go, which under a playing playhead is a stall from |now|). Advances to |now|
 * first; may start or resume playback at |now|. */
void pc_player_set_buffer(pc_player *p, uint64_t end_us, uint64_t now);
/* Moves the playhead to |pos_us| (clamped to the content) and waits for the buffer like a start. The
 * caller then reports the buffer at the new position. */
void pc_player_seek(pc_player *p, uint64_t pos_us, uint64_t now);
/* The viewer leaves; nothing changes afterwards. */
void pc_player_quit(pc_player *p, uint64_t now);
/* |p| as it stands at |now| (earlier times count as the last update), without changing it: advanced
 * to |now|, and a stall or seek wait still under way counted up to |now| (it stays open). For reports
 * taken between updates, and at the end of a run. */
void pc_player_view(const pc_player *p, uint64_t now, pc_player *out);
/* When the state would next change on its own (a stall or the end), or PC_NEVER. */
uint64_t pc_player_next_event(const pc_player *p);
/* 1 while the viewer wants media (not IDLE, ENDED or QUIT). */
int pc_player_active(const pc_player *p);

#endif
