/* Player model; see pc_player.h. */
#include "pc_player.h"

void pc_player_init(pc_player *p, uint64_t duration_us, uint64_t start_us, uint64_t resume_us)
{
    *p = (pc_player){.state = PC_PLAYER_IDLE, .duration_us = duration_us, .start_us = start_us,
                     .resume_us = resume_us, .startup_us = PC_NEVER};
}

void pc_player_play(pc_player *p, uint64_t now)
{
    if (p->state != PC_PLAYER_IDLE)
        return;
    p->state = PC_PLAYER_STARTING;
    p->t_us = p->requested_at = now;
    pc_player_set_buffer(p, p->buffer_end_us, now);
}

static uint64_t buffered(const pc_player *p)
{
    return p->buffer_end_us > p->pos_us ? p->buffer_end_us - p->pos_us : 0;
}

void pc_player_advance(pc_player *p, uint64_t now)
{
    if (now <= p->t_us) {
        return;
    }
    if (p->state == PC_PLAYER_PLAYING) {
        uint64_t limit = p->buffer_end_us < p->duration_us ? p->buffer_end_us : p->duration_us;
        uint64_t room = limit > p->pos_us ? limit - p->pos_us : 0;
        uint64_t dt = now - p->t_us;
        if (dt < room) {
            p->pos_us += dt;
            p->played_us += dt;
        } else {
            p->pos_us = limit;
            p->played_us += room;
            uint64_t at = p->t_us + room;
            if (limit >= p->duration_us) {
                p->state = PC_PLAYER_ENDED;
            } else {
                p->state = PC_PLAYER_STALLED;
                p->stalls++;
                p->stall_began = at;
            }
        }
    }
    p->t_us = now;
}

/* Waiting states start playing once the buffer holds |need| or reaches the end. */
static void maybe_start(pc_player *p, uint64_t now)
{
    uint64_t need = p->state == PC_PLAYER_STALLED ? p->resume_us : p->start_us;
    if (buffered(p) < need && p->buffer_end_us < p->duration_us)
        return;
    if (p->state == PC_PLAYER_STARTING)
        p->startup_us = now - p->requested_at;
    else if (p->state == PC_PLAYER_STALLED)
        p->stall_us += now - p->stall_began;
    else if (p->state == PC_PLAYER_SEEKING)
        p->seek_wait_us += now - p->requested_at;
    p->state = p->pos_us >= p->duration_us ? PC_PLAYER_ENDED : PC_PLAYER_PLAYING;
}

void pc_player_set_buffer(pc_player *p, uint64_t end_us, uint64_t now)
{
    pc_player_advance(p, now);
    p->buffer_end_us = end_us > p->duration_us ? p->duration_us : end_us;
    if (p->state == PC_PLAYER_PLAYING && p->buffer_end_us <= p->pos_us && p->pos_us < p->duration_us) {
        /* the buffer shrank under the playhead (the copy being played was let go): a stall from now.
         * Playing on, the model's next event stayed |now| for ever. */
        p->state = PC_PLAYER_STALLED;
        p->stalls++;
        p->stall_began = now > p->t_us ? now : p->t_us;
    }
    if (p->state == PC_PLAYER_STARTING || p->state == PC_PLAYER_STALLED || p->state == PC_PLAYER_SEEKING)
        maybe_start(p, now);
}

/* Counts a stall or a seek's wait under way up to |now| (the state is left to the caller). */
static void close_wait(pc_player *p, uint64_t now)
{
    if (p->state == PC_PLAYER_STALLED)
        p->stall_us += now - p->stall_began;
    else if (p->state == PC_PLAYER_SEEKING)
        p->seek_wait_us += now - p->requested_at;
}

void pc_player_seek(pc_player *p, uint64_t pos_us, uint64_t now)
{
    if (p->state == PC_PLAYER_IDLE || p->state == PC_PLAYER_QUIT)
        return;
    pc_player_advance(p, now);
    close_wait(p, now); /* a stall or an earlier seek's wait ends with the seek; the wait after is this seek's */
    if (p->state == PC_PLAYER_STARTING)
        p->startup_us = now - p->requested_at; /* a seek before start-up ends start-up */
    p->pos_us = pos_us < p->duration_us ? pos_us : p->duration_us;
    p->buffer_end_us = p->pos_us;
    p->requested_at = now;
    p->seeks++;
    p->state = p->pos_us >= p->duration_us ? PC_PLAYER_ENDED : PC_PLAYER_SEEKING;
}

void pc_player_quit(pc_player *p, uint64_t now)
{
    if (p->state == PC_PLAYER_QUIT)
        return;
    pc_player_advance(p, now);
    close_wait(p, now);
    p->state = PC_PLAYER_QUIT;
}

void pc_player_view(const pc_player *p, uint64_t now, pc_player *out)
{
    *out = *p;
    if (now < out->t_us)
        now = out->t_us;
    pc_player_advance(out, now);
    close_wait(out, now); /* in the copy only: the wait stays open in |p| */
}

uint64_t pc_player_next_event(const pc_player *p)
{
    if (p->state != PC_PLAYER_PLAYING)
        return PC_NEVER;
    uint64_t limit = p->buffer_end_us < p->duration_us ? p->buffer_end_us : p->duration_us;
    return p->t_us + (limit > p->pos_us ? limit - p->pos_us : 0);
}

int pc_player_active(const pc_player *p)
{
    return p->state != PC_PLAYER_IDLE && p->state != PC_PLAYER_ENDED && p->state != PC_PLAYER_QUIT;
}
