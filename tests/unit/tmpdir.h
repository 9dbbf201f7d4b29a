/* A fresh temporary directory per unit test: tmpdir_setup/tmpdir_teardown as cmocka fixtures (the test's
 * state is the tmpdir), path_in for a file in it. Teardown removes whatever the test left there (files
 * and empty directories, one level), so no list of names can fall behind the test. */
#ifndef PC_TEST_TMPDIR_H
#define PC_TEST_TMPDIR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct tmpdir {
    char dir[64];
} tmpdir;

static int tmpdir_setup(void **state)
{
    tmpdir *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -1;
    snprintf(t->dir, sizeof(t->dir), "/tmp/pc_test.XXXXXX");
    if (mkdtemp(t->dir) == NULL) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static void path_in(const tmpdir *t, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", t->dir, name);
}

static int tmpdir_teardown(void **state)
{
    tmpdir *t = *state;
    DIR *d = opendir(t->dir);
    struct dirent *e;
    char p[128 + 256];
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", t->dir, e->d_name);
        if (unlink(p) != 0)
            rmdir(p);
    }
    if (d != NULL)
        closedir(d);
    rmdir(t->dir);
    free(t);
    return 0;
}

#endif
