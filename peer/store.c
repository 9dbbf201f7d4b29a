/* Segment store (store.h): pc_blobcache in memory, one file per segment on disk. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pc_log.h"

struct pc_store {
    pc_blobcache *mem;
    char *dir; /* NULL: memory only */
    pc_store_verify_fn verify;
    void *arg;
};

static int mkdir_p(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return -1;
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return mkdir(tmp, 0700) != 0 && errno != EEXIST ? -1 : 0;
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
        if (mkdir_p(s->dir) != 0) {
            pc_store_free(s);
            return PC_EIO;
        }
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

static void disk_write(pc_store *s, const char *key, const uint8_t *data, size_t len)
{
    char path[4200], tmp[4210];
    snprintf(path, sizeof(path), "%s/%s", s->dir, key);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t done = 0;
    while (fd >= 0 && done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    if (fd < 0 || done < len || close(fd) != 0 || rename(tmp, path) != 0) {
        PC_LOGW("store", "cannot write %s: %s", path, strerror(errno));
        if (fd >= 0 && done < len)
            close(fd);
        unlink(tmp);
    }
}

int pc_store_put(pc_store *s, uint32_t rung, uint32_t seg, const uint8_t *data, size_t len)
{
    char key[32];
    int kl = key_of(rung, seg, key, sizeof(key));
    pc_blob *b = pc_blobcache_put(s->mem, key, (size_t)kl, data, len, NULL, 0);
    if (s->dir != NULL)
        disk_write(s, key, data, len);
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

pc_blob *pc_store_get(pc_store *s, uint32_t rung, uint32_t seg, size_t expect_len)
{
    char key[32];
    int kl = key_of(rung, seg, key, sizeof(key));
    pc_blob *b = pc_blobcache_get(s->mem, key, (size_t)kl);
    if (b != NULL || s->dir == NULL)
        return b;
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", s->dir, key);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    uint8_t *data = NULL;
    size_t got = 0;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size == (uint64_t)expect_len && expect_len > 0 &&
        (data = malloc(expect_len)) != NULL) {
        while (got < expect_len) {
            ssize_t r = read(fd, data + got, expect_len - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
    }
    close(fd);
    if (data != NULL && got == expect_len && s->verify(s->arg, rung, seg, data, got))
        b = pc_blobcache_put(s->mem, key, (size_t)kl, data, got, NULL, 0);
    else if (data != NULL)
        PC_LOGW("store", "%s does not match the manifest: ignored", path);
    free(data);
    return b;
}

void pc_store_stats(const pc_store *s, pc_blobcache_stats *out)
{
    pc_blobcache_get_stats(s->mem, out);
}
