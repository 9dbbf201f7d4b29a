/* Fuzzes the simulator's scenario parser on arbitrary bytes: no crash, an error sentence on failure, and
 * a parsed scenario keeps its promises (ranges the simulator relies on). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sim_scenario s;
    char err[256];
    err[0] = '\0';
    if (sim_scenario_parse((const char *)data, size, &s, err, sizeof(err)) == 0) {
        if (s.n_rungs < 1 || s.n_rungs > PC_RUNGS_MAX || s.videos < 1 || !(s.segment_s >= 0.5) ||
            !(s.duration_s >= 1) || s.n_regions < 1 || s.n_regions > SIM_REGIONS_MAX ||
            (s.arrivals == SIM_ARR_LIST && (s.nlist == 0 || s.list_s == NULL)))
            abort();
        for (uint32_t i = 1; i < s.n_rungs; i++)
            if (s.ladder_kbps[i] < s.ladder_kbps[i - 1])
                abort();
        sim_scenario_clear(&s);
    } else if (err[0] == '\0') {
        abort();
    }
    return 0;
}
