/* Drawing a scenario's catalog and viewers; see workload.h. The order of draws is part of the
 * contract: changing it changes every simulation's result for a given seed. */
#include "workload.h"

#include <math.h>
#include <stdlib.h>

#define S_US 1000000.0

uint64_t sim_catalog_seed(const sim_scenario *sc)
{
    return sc->seed ^ 0x5eedf00dULL;
}

double sim_catalog_next(const sim_scenario *sc, pc_rng *r, double *factor, uint32_t *n)
{
    double len = sim_dist_draw(&sc->video_duration_s, r);
    /* counted in whole microseconds, as the segments' durations are (sim_segment_us): a rest shorter
     * than one (4.2 / 0.7 = 6.000000000000001) is no segment, and the engine refuses a segment of 0 µs */
    uint64_t len_us = (uint64_t)(len * 1e6), seg_us = (uint64_t)(sc->segment_s * 1e6);
    uint32_t k = len_us <= seg_us ? 1 : (uint32_t)((len_us + seg_us - 1) / seg_us);
    if (k > PC_ENGINE_SEGMENTS_MAX)
        k = PC_ENGINE_SEGMENTS_MAX;
    for (uint32_t i = 0; i < k; i++) {
        double f = 0.8 + 0.4 * pc_rng_double(r);
        if (factor != NULL)
            factor[i] = f;
    }
    *n = k;
    return len;
}

uint32_t sim_segment_us(const sim_scenario *sc, double len, uint32_t n, uint32_t i)
{
    uint64_t len_us = (uint64_t)(len * 1e6), seg_us = (uint64_t)(sc->segment_s * 1e6);
    if (i + 1 < n || len_us <= seg_us * (n - 1))
        return (uint32_t)seg_us;
    uint64_t d = len_us - seg_us * (n - 1);
    return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

int sim_workload_init(sim_workload *w, const sim_scenario *sc, uint64_t seed)
{
    *w = (sim_workload){.sc = sc, .flash_left = sc->flash_count};
    pc_rng_init(&w->rng, seed);
    w->zipf_cum = calloc(sc->videos ? sc->videos : 1, sizeof(double));
    if (w->zipf_cum == NULL)
        return PC_ENOMEM;
    double total = 0;
    for (uint32_t k = 0; k < sc->videos; k++) {
        total += 1.0 / pow(k + 1, sc->zipf);
        w->zipf_cum[k] = total;
    }
    for (uint32_t k = 0; k < sc->videos; k++)
        w->zipf_cum[k] /= total;
    return 0;
}

void sim_workload_clear(sim_workload *w)
{
    free(w->zipf_cum);
    w->zipf_cum = NULL;
}

int sim_workload_next_time(sim_workload *w, uint32_t present, uint64_t *at)
{
    const sim_scenario *sc = w->sc;
    if (sc->max_viewers > 0 && present >= sc->max_viewers)
        return PC_ENOENT;
    switch (sc->arrivals) {
    case SIM_ARR_POISSON: {
        double gap = -log(1.0 - pc_rng_double(&w->rng)) / sc->rate_per_s;
        *at = w->last + (uint64_t)(gap * S_US);
        return 0;
    }
    case SIM_ARR_FLASH:
        if (w->flash_left == 0)
            return PC_ENOENT;
        {
            uint32_t k = sc->flash_count - w->flash_left--;
            double t = sc->flash_at_s + (sc->flash_count > 1 ? sc->flash_over_s * k / (sc->flash_count - 1) : 0);
            *at = (uint64_t)(t * S_US);
        }
        return 0;
    case SIM_ARR_LIST:
        if (w->list_next >= sc->nlist)
            return PC_ENOENT;
        *at = (uint64_t)(sc->list_s[w->list_next++] * S_US);
        return 0;
    }
    return PC_ENOENT;
}

void sim_workload_viewer(sim_workload *w, uint64_t at, sim_arrival *a)
{
    const sim_scenario *sc = w->sc;
    w->last = at;
    *a = (sim_arrival){.at = at};
    double u = pc_rng_double(&w->rng);
    uint32_t lo = 0, hi = sc->videos - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (w->zipf_cum[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    a->video = lo;
    u = pc_rng_double(&w->rng);
    double acc = 0, tw = 0;
    for (uint32_t i = 0; i < sc->n_regions; i++)
        tw += sc->region_weight[i];
    for (uint32_t i = 0; i < sc->n_regions; i++) {
        acc += sc->region_weight[i] / (tw > 0 ? tw : 1);
        if (u < acc || i + 1 == sc->n_regions) {
            a->region = i;
            break;
        }
    }
    a->up_kbps = sim_dist_draw(&sc->up_kbps, &w->rng);
    a->down_kbps = sim_dist_draw(&sc->down_kbps, &w->rng);
    a->watch = sim_dist_draw(&sc->watch_fraction, &w->rng);
    a->seeks = pc_rng_double(&w->rng) < sc->seek_probability;
    a->seek_u = pc_rng_double(&w->rng);
    a->seek_pos = pc_rng_double(&w->rng);
    a->seed_after_s = sim_dist_draw(&sc->seed_after_s, &w->rng);
    a->abrupt = pc_rng_double(&w->rng) < sc->abrupt_leave_probability;
}
