/* Segment store (store.h): pc_blobcache in memory, one file per segment on disk. */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pc_fs.h"
#include "pc_log.h"

struct pc_store {
    pc_blobcache *mem;
    char *dir; /* NULL: memory only */
    pc_store_verify_fn verify;
    void *arg;
    pc_store_lost_fn lost;
    void *lost_arg;
    uint64_t write_fails;
};

static int on_disk(const pc_store *s, const char *key, size_t expect_len)
{
    char path[4200];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", s->dir, key);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (expect_len == 0 || (size_t)st.st_size == expect_len);
}

static void on_evict(void *arg, const char *key, size_t keylen)
{
    pc_store *s = arg;
    unsigned rung, seg;
    char k[32];
    if (s->lost == NULL || keylen >= sizeof(k))
        return;
    memcpy(k, key, keylen);
    k[keylen] = '\0';
    if (sscanf(k, "%u-%u", &rung, &seg) == 2 && (s->dir == NULL || !on_disk(s, k, 0)))
        s->lost(s->lost_arg, rung, seg);
}

void pc_store_on_lost(pc_store *s, pc_store_lost_fn fn, void *arg)
{
    s->lost = fn;
    s->lost_arg = arg;
    pc_blobcache_on_evict(s->mem, fn != NULL ? on_evict : NULL, s);
}

int pc_store_new(size_t mem_cap, const char *dir, const char *video, pc_store_verify_fn verify, void *arg,
                 pc_store **out)
{
    *out = NULL;
    pc_store *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return PC_ENOMEM;
    s->mem = pc_blobcache_new(mem_cap, mem_cap);
    s->verify = verify;
    s->arg = arg;
    if (s->mem == NULL) {
        free(s);
        return PC_ENOMEM;
    }
    if (dir != NULL) {
        size_t n = strlen(dir) + strlen(video) + 2;
        s->dir = malloc(n);
        if (s->dir == NULL) {
            pc_store_free(s);
            return PC_ENOMEM;
        }
        snprintf(s->dir, n, "%s/%s", dir, video);
        int rc = pc_mkdirs(s->dir); /* PC_EEXIST: a file that is not a directory is in the way */
        if (rc != 0) {
            pc_store_free(s);
            return rc;
        }
        int swept = pc_sweep_tmp(s->dir); /* a segment a killed run was writing */
        if (swept > 0)
            PC_LOGI("store", "removed %d unfinished files a run that was killed left in %s", swept, s->dir);
    }
    *out = s;
    return 0;
}

void pc_store_free(pc_store *s)
{
    if (s == NULL)
        return;
    pc_blobcache_free(s->mem);
    free(s->dir);
    free(s);
}

static int key_of(uint32_t rung, uint32_t seg, char *key, size_t n)
{
    return snprintf(key, n, "%u-%u", rung, seg);
}

int pc_store_put(pc_store *s, uint32_t rung, uint32_t seg, const uint8_t *data, size_t len)
{
    char key[32];
    int kl = key_of(rung, seg, key, sizeof(key));
    pc_blob *b = pc_blobcache_put(s->mem, key, (size_t)kl, data, len, NULL, 0);
    if (s->dir != NULL) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/%s", s->dir, key);
        int rc = pc_replace_file(path, data, len); /* not trusted: a FIFO there is replaced, not opened */
        if (rc != 0 && s->write_fails++ == 0) /* once: a full disk said so for every segment */
            PC_LOGW("store", "cannot write %s: %s (the disk cache misses this copy and any other that fails to "
                             "be written; the report counts them)", path, pc_strerror(rc));
    }
    if (b == NULL)
        return PC_ETOOBIG;
    pc_blob_release(b);
    return 0;
}

int pc_store_has(pc_store *s, uint32_t rung, uint32_t seg)
{
    char key[32];
    int kl = key_of(rung, seg, key, sizeof(key));
    pc_blob *b = pc_blobcache_get(s->mem, key, (size_t)kl);
    if (b == NULL)
        return 0;
    pc_blob_release(b);
    return 1;
}

int pc_store_holds(pc_store *s, uint32_t rung, uint32_t seg, size_t expect_len)
{
    char key[32];
    key_of(rung, seg, key, sizeof(key));
    return pc_store_has(s, rung, seg) || (s->dir != NULL && on_disk(s, key, expect_len));
}

pc_blob *pc_store_get(pc_store *s, uint32_t rung, uint32_t seg, size_t expect_len)
{
    char key[32];
    int kl = key_of(rung, seg, key, sizeof(key));
    pc_blob *b = pc_blobcache_get(s->mem, key, (size_t)kl);
    if (b != NULL || s->dir == NULL)
        return b;
    char path[4200], *data = NULL;
    size_t got = 0;
    snprintf(path, sizeof(path), "%s/%s", s->dir, key);
    if (expect_len == 0 || pc_read_file(path, expect_len, &data, &got) != 0)
        return NULL; /* absent, unreadable or longer than the segment */
    if (got == expect_len && s->verify(s->arg, rung, seg, (const uint8_t *)data, got))
        b = pc_blobcache_put(s->mem, key, (size_t)kl, data, got, NULL, 0);
    else
        PC_LOGW("store", "%s does not match the manifest: ignored", path);
    free(data);
    return b;
}

void pc_store_stats(const pc_store *s, pc_blobcache_stats *out)
{
    pc_blobcache_get_stats(s->mem, out);
}

size_t pc_store_held_out(const pc_store *s)
{
    return pc_blobcache_held_out(s->mem);
}

uint64_t pc_store_write_failures(const pc_store *s)
{
    return s->write_fails;
}
