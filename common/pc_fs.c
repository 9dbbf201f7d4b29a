/* File-system helpers (pc_fs.h). */
#include "pc_fs.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pc_log.h"
#include "pc_num.h"

int pc_mkdirs(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return PC_ETOOBIG;
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return errno == ENOTDIR ? PC_EEXIST : pc_err_from_errno(errno);
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return errno == ENOTDIR ? PC_EEXIST : pc_err_from_errno(errno); /* a file in the way */
    struct stat st; /* EEXIST: a directory is fine; a file of that name is not one */
    if (stat(tmp, &st) != 0)
        return pc_err_from_errno(errno);
    return S_ISDIR(st.st_mode) ? 0 : PC_EEXIST;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) { /* a non-blocking descriptor we were given (our
                                                            * stdout, a pipe): wait until it takes more */
                struct pollfd pf = {.fd = fd, .events = POLLOUT};
                if (poll(&pf, 1, 30000) > 0)
                    continue;
                return PC_ETIMEDOUT;
            }
            return pc_err_from_errno(errno);
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int pc_replace_file(const char *path, const void *data, size_t len)
{
    return pc_replace_file_mode(path, data, len, 0644);
}

int pc_open_tmp(const char *path, char tmp[PC_TMP_PATH_MAX], unsigned mode)
{
    /* a name of this process's own: two processes writing the same file (two seeders sharing a cache
     * directory, viewers pinning a key in one state directory at once) each rename a whole file, never
     * the other's half-written one; O_EXCL: a new file, never something planted under that name */
    static _Atomic unsigned counter;
    for (int attempt = 0; attempt < 8; attempt++) {
        if (snprintf(tmp, PC_TMP_PATH_MAX, "%s.tmp.%ld.%u", path, (long)getpid(), counter++) >= PC_TMP_PATH_MAX)
            return PC_ETOOBIG;
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)mode);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST) /* else left by a process that had this pid: the next number */
            return pc_err_from_errno(errno);
    }
    return PC_EEXIST;
}

int pc_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return pc_err_from_errno(errno);
    int r = fsync(fd) != 0 ? pc_err_from_errno(errno) : 0;
    close(fd);
    return r;
}

int pc_fsync_parent(const char *path)
{
    char dir[PC_PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return pc_fsync_dir(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= sizeof(dir))
        return PC_ETOOBIG;
    memcpy(dir, path, n);
    dir[n] = '\0';
    return pc_fsync_dir(dir);
}

int pc_replace_file_mode(const char *path, const void *data, size_t len, unsigned mode)
{
    char tmp[PC_TMP_PATH_MAX];
    int fd = pc_open_tmp(path, tmp, mode);
    if (fd < 0)
        return fd;
    int r = write_all(fd, data, len);
    if (r == 0 && fdatasync(fd) != 0) /* the data before the name: a power cut never leaves an empty file */
        r = pc_err_from_errno(errno);
    if (r != 0) {
        close(fd);
        unlink(tmp);
        return r;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return pc_err_from_errno(e);
    }
    return pc_fsync_parent(path);
}

int pc_std_fd(const char *path)
{
    static const struct {
        const char *prefix;
        int fd; /* -1: the number follows the prefix */
    } names[] = {{"/dev/stdout", 1}, {"/dev/stderr", 2}, {"/dev/fd/", -1}, {"/proc/self/fd/", -1}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t n = strlen(names[i].prefix);
        if (strncmp(path, names[i].prefix, n) != 0)
            continue;
        if (names[i].fd >= 0)
            return path[n] == '\0' ? names[i].fd : -1;
        int64_t fd;
        return pc_parse_int_str(path + n, 0, 1 << 20, 0, &fd) == 0 ? (int)fd : -1;
    }
    return -1;
}

int pc_write_file(const char *path, const void *data, size_t len)
{
    /* what this process was given as its output: written there, at its offset (a shell's "> out.json"
     * keeps what came before); reopening /proc/self/fd/1 would truncate that, and renaming over
     * /dev/stdout (as root) would replace the system's link with a file */
    int sfd = pc_std_fd(path);
    if (sfd >= 0) {
        int fl = fcntl(sfd, F_GETFL);
        if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY)
            return pc_err_from_errno(fl < 0 ? errno : EBADF);
        return write_all(sfd, data, len);
    }
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        /* a link is followed, never replaced: what it leads to is written by these rules (atomically, if a
         * regular file; created, if nothing is there yet; our own descriptor, if it leads to /dev/stdout) */
        char to[PC_PATH_MAX];
        int r = pc_follow_links(path, to);
        return r != 0 ? r : pc_write_file(to, data, len);
    }
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode))
        return pc_replace_file(path, data, len);
    /* a device, a pipe or a terminal (--report /dev/stdout): written into, never replaced */
    if (S_ISDIR(st.st_mode))
        return PC_EINVAL;
    /* O_NONBLOCK for the open only: a FIFO nobody reads is an error (ENXIO), not a wait for good */
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return pc_err_from_errno(errno);
    int fl = fcntl(fd, F_GETFL);
    int r = fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 ? pc_err_from_errno(errno) : write_all(fd, data, len);
    if (close(fd) != 0 && r == 0)
        r = pc_err_from_errno(errno);
    return r;
}

int pc_read_file(const char *path, size_t max, char **out, size_t *len)
{
    /* O_NONBLOCK: a FIFO or device in the path's place does not block the open (and is refused
     * below); on a regular file the flag changes nothing */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return pc_err_from_errno(errno);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return PC_EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return PC_EINVAL;
    }
    if ((size_t)st.st_size > max) {
        close(fd);
        return PC_ETOOBIG;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return PC_ENOMEM;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (got != (size_t)st.st_size) {
        free(buf);
        return PC_EIO;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

unsigned long pc_raise_nofile(const char *component)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > ((rlim_t)1 << 20) ? (rlim_t)1 << 20 : rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        struct rlimit up = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl.rlim_cur = want;
    }
    unsigned long n = rl.rlim_cur == RLIM_INFINITY ? (unsigned long)1 << 20 : (unsigned long)rl.rlim_cur;
    if (n < PC_NOFILE_WARN)
        PC_LOGW(component, "only %lu file descriptors (ulimit -Hn): about that many connections at once, no more", n);
    return n;
}

int pc_sweep_tmp(const char *dir)
{
    return pc_sweep_tmp_names(dir, NULL, 0);
}

int pc_sweep_tmp_names(const char *dir, const char *prefix, unsigned flags)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int n = 0;
    size_t pl = prefix != NULL ? strlen(prefix) : 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        /* NAME.tmp.PID.N (pc_open_tmp) of a process that is gone: it died between writing and renaming */
        const char *t = strstr(e->d_name, ".tmp.");
        if (t == NULL || strncmp(e->d_name, prefix != NULL ? prefix : "", pl) != 0)
            continue;
        char *end = NULL;
        long pid = strtol(t + 5, &end, 10);
        int named = *end == '.' && end[1] >= '0' && end[1] <= '9';
        if (!named && *end == '\0' && (flags & PC_SWEEP_BARE_PID))
            named = 1;
        if (end == t + 5 || !named || pid <= 0)
            continue; /* not such a name */
        if (!(flags & PC_SWEEP_ANY_PID) && (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH))
            continue; /* this process's own, being written, or its writer lives (EPERM: someone else's, alive) */
        if (unlinkat(dirfd(d), e->d_name, 0) == 0)
            n++;
    }
    closedir(d);
    return n;
}

int pc_follow_links(const char *path, char out[PC_PATH_MAX])
{
    if (snprintf(out, PC_PATH_MAX, "%s", path) >= PC_PATH_MAX)
        return PC_ETOOBIG;
    for (int hop = 0; hop < 8; hop++) {
        struct stat st;
        if (pc_std_fd(out) >= 0 || lstat(out, &st) != 0 || !S_ISLNK(st.st_mode))
            return 0; /* our own descriptor's name, nothing yet (to be created), or not a link */
        char to[PC_PATH_MAX];
        ssize_t n = readlink(out, to, sizeof(to) - 1);
        if (n < 0)
            return pc_err_from_errno(errno);
        to[n] = '\0';
        if (to[0] == '/') {
            memcpy(out, to, (size_t)n + 1);
        } else { /* relative to the link's directory */
            char *slash = strrchr(out, '/');
            size_t dl = slash != NULL ? (size_t)(slash - out) + 1 : 0;
            if (dl + (size_t)n + 1 > PC_PATH_MAX)
                return PC_ETOOBIG;
            memmove(out + dl, to, (size_t)n + 1);
        }
    }
    return pc_err_from_errno(ELOOP);
}
