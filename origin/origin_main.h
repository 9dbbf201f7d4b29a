/* Entry points of the peercdn-origin subcommands. */
#ifndef PC_ORIGIN_MAIN_H
#define PC_ORIGIN_MAIN_H

#include "origin.h"

/* Runs the server until SIGINT/SIGTERM; returns the process exit code. */
int pc_origin_serve(const pc_origin_config *cfg);

typedef struct pc_upload_opts {
    const char *file;
    const char *origin;
    const char *token;
    const char *title;
    int parallel;
    int wait;          /* wait until the video is ready (or failed) */
    int progress;      /* -1 auto (terminal), 0 off, 1 on */
    const char *state; /* resume state file; NULL: default under $XDG_CACHE_HOME */
    int64_t chunk;     /* bytes per PATCH */
} pc_upload_opts;

/* peercdn-origin upload: returns the exit code. */
int pc_origin_upload(const pc_upload_opts *opts);

#endif
