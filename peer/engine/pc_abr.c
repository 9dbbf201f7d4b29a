/* Adaptive bitrate; see pc_abr.h. */
#include "pc_abr.h"

#include "pc_player.h"

void pc_abr_config_default(pc_abr_config *c)
{
    *c = (pc_abr_config){.reservoir_us = 6000000, .safety = 0.8, .up_hold_us = 6000000, .prefer_held = 1,
                         .down_hold_us = 20000000};
}

static uint32_t sustainable(const pc_abr *a, double tput_bps)
{
    uint32_t r = 0;
    for (uint32_t i = 1; i < a->n; i++)
        if ((double)a->bw[i] <= a->cfg.safety * tput_bps)
            r = i;
    return r;
}

void pc_abr_init(pc_abr *a, const pc_abr_config *c, uint32_t n, const uint32_t *bw, uint64_t start_bps)
{
    a->cfg = *c;
    a->n = n > PC_RUNGS_MAX ? PC_RUNGS_MAX : (n == 0 ? 1 : n);
    for (uint32_t i = 0; i < a->n; i++)
        a->bw[i] = n > 0 ? bw[i] : 0;
    a->pinned = -1;
    a->cur = a->target = start_bps > 0 ? sustainable(a, (double)start_bps) : 0;
    a->up_since = PC_NEVER;
    a->switches = 0;
}

void pc_abr_pin(pc_abr *a, int r)
{
    a->pinned = r >= 0 && (uint32_t)r < a->n ? r : -1;
    a->up_since = PC_NEVER; /* a climb under way is off (its end would otherwise stay a timer in the past) */
}

uint32_t pc_abr_decide(pc_abr *a, uint64_t buffer_us, double tput_bps, uint32_t swarm_holds, uint64_t now)
{
    uint32_t prev = a->cur;
    if (a->pinned >= 0) {
        a->cur = a->target = (uint32_t)a->pinned;
        a->up_since = PC_NEVER;
        a->switches += a->cur != prev;
        return a->cur;
    }
    uint32_t target = tput_bps > 0 ? sustainable(a, tput_bps) : a->cur;
    /* all else equal, a rung the swarm holds over the next one up that it does not */
    if (a->cfg.prefer_held && target > a->cur && !(swarm_holds & (1u << target)) && (swarm_holds & (1u << (target - 1))))
        target--;
    /* a buffer this deep that is not draining: no need to step down for the safety margin's sake */
    if (target < a->cur && a->cfg.down_hold_us > 0 && buffer_us >= a->cfg.down_hold_us && (double)a->bw[a->cur] <= tput_bps)
        target = a->cur;
    if (target < a->cur) {
        a->cur = target; /* the throughput no longer sustains it: down now, before the buffer drains */
        a->up_since = PC_NEVER;
    } else if (target > a->cur && buffer_us >= a->cfg.reservoir_us) {
        if (a->up_since == PC_NEVER)
            a->up_since = now;
        if (now - a->up_since >= a->cfg.up_hold_us) {
            a->cur++;
            a->up_since = a->cur < target ? now : PC_NEVER;
        }
    } else {
        a->up_since = PC_NEVER;
    }
    a->switches += a->cur != prev;
    a->target = target > a->cur ? target : a->cur;
    return a->cur;
}

uint32_t pc_abr_projected(const pc_abr *a, uint64_t ahead_us)
{
    if (a->pinned >= 0 || a->target <= a->cur || a->cfg.up_hold_us == 0)
        return a->cur;
    uint64_t steps = ahead_us / a->cfg.up_hold_us;
    return steps >= a->target - a->cur ? a->target : a->cur + (uint32_t)steps;
}
