/* peercdn-sim emulate: a scenario run with real tracker, origin and peer processes (docs/sim.md). */
#ifndef SIM_EMULATE_H
#define SIM_EMULATE_H

/* The `emulate` command: |argv[0]| is "emulate"; |self| is the program's path. Returns the exit
 * status (0; 1 on failure with one line on stderr; 2 on bad usage; 130 when interrupted). */
int sim_emulate_main(int argc, char **argv, const char *self);
const char *sim_emulate_usage(void);

#endif
