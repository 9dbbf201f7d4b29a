/* pc_fs: whole-file writes (atomic for regular files, into the file for devices and pipes, through links and
 * our own descriptors), bounded reads. */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "pc_fs.h"
#include "tmpdir.h"

/* How many entries the test's directory holds (temporary files left beside a file would show). */
static int entries(const tmpdir *t)
{
    DIR *d = opendir(t->dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void a_regular_file_is_replaced_whole(void **state)
{
    tmpdir *t = *state;
    char p[128];
    path_in(t, "file", p, sizeof(p));
    assert_int_equal(pc_write_file(p, "first version", 13), 0);
    assert_int_equal(pc_write_file(p, "second", 6), 0);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(pc_read_file(p, 100, &text, &len), 0);
    assert_int_equal(len, 6);
    assert_string_equal(text, "second");
    free(text);
    assert_int_equal(entries(t), 1); /* no temporary file left beside it */
}

/* A link is followed, not replaced: as root, --report /dev/stdout (a link) became a regular file in /dev.
 * The file it leads to gets the bytes, whole. */
static void a_link_is_followed_not_replaced(void **state)
{
    tmpdir *t = *state;
    char target[128], link[128];
    path_in(t, "target", target, sizeof(target));
    path_in(t, "link", link, sizeof(link));
    assert_int_equal(pc_write_file(target, "old", 3), 0);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(pc_write_file(link, "report", 6), 0);
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(pc_read_file(target, 100, &text, &len), 0);
    assert_string_equal(text, "report");
    free(text);
    assert_int_equal(entries(t), 2);
}

/* Links are followed a hop at a time: one to /dev/fd/N (a user's "r.json -> /dev/stdout") reaches our
 * descriptor, not /proc/self/fd's "pipe:[...]", which no file is; a dangling one creates what it names,
 * as a shell's ">" would; relative hops are read from the link's directory. */
static void links_are_followed_a_hop_at_a_time(void **state)
{
    tmpdir *t = *state;
    char link[128], link2[128], target[128], name[64];
    int pf[2];
    assert_int_equal(pipe(pf), 0);
    snprintf(name, sizeof(name), "/dev/fd/%d", pf[1]);
    path_in(t, "to-pipe", link, sizeof(link));
    assert_int_equal(symlink(name, link), 0);
    assert_int_equal(pc_write_file(link, "pipe", 4), 0);
    char buf[8] = "";
    assert_int_equal(read(pf[0], buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "pipe", 4);
    close(pf[0]);
    close(pf[1]);
    path_in(t, "dangling", link, sizeof(link));
    path_in(t, "hop", link2, sizeof(link2));
    path_in(t, "made", target, sizeof(target));
    assert_int_equal(symlink("hop", link), 0); /* relative: dangling -> hop -> made */
    assert_int_equal(symlink("made", link2), 0);
    assert_int_equal(pc_write_file(link, "new", 3), 0);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(pc_read_file(target, 100, &text, &len), 0);
    assert_string_equal(text, "new");
    free(text);
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
}

/* /dev/stdout, /dev/fd/N: this process's own descriptor, written at its offset (a shell's "> out" keeps
 * what came before it), not reopened with O_TRUNC. */
static void our_own_descriptors_are_written_where_they_stand(void **state)
{
    tmpdir *t = *state;
    char p[128], name[64];
    path_in(t, "out", p, sizeof(p));
    assert_int_equal(pc_std_fd("/dev/stdout"), 1);
    assert_int_equal(pc_std_fd("/dev/stderr"), 2);
    assert_int_equal(pc_std_fd("/proc/self/fd/7"), 7);
    assert_int_equal(pc_std_fd("/dev/stdoutx"), -1);
    assert_int_equal(pc_std_fd("/dev/fd/x"), -1);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "listening\n", 10), 10);
    snprintf(name, sizeof(name), "/dev/fd/%d", fd);
    assert_int_equal(pc_write_file(name, "{}", 2), 0);
    close(fd);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(pc_read_file(p, 100, &text, &len), 0);
    assert_string_equal(text, "listening\n{}");
    free(text);
    int rd = open(p, O_RDONLY);
    snprintf(name, sizeof(name), "/dev/fd/%d", rd);
    assert_int_not_equal(pc_write_file(name, "x", 1), 0); /* open for reading only */
    close(rd);
}

/* A process killed between writing a file and renaming it leaves its temporary file: the next run that
 * opens the directory (the peer's --cache-dir) removes those of processes no longer running. */
static void leftovers_of_dead_writers_are_swept(void **state)
{
    tmpdir *t = *state;
    char p[128], mine[PC_TMP_PATH_MAX];
    path_in(t, "0-1.tmp.999999999.3", p, sizeof(p)); /* no such pid */
    assert_int_equal(pc_write_file(p, "x", 1), 0);
    path_in(t, "0-2.tmp.1.0", p, sizeof(p)); /* pid 1 lives */
    assert_int_equal(pc_write_file(p, "x", 1), 0);
    path_in(t, "0-3", p, sizeof(p));
    int fd = pc_open_tmp(p, mine, 0600); /* this process's, being written */
    assert_true(fd >= 0);
    assert_int_equal(pc_sweep_tmp(t->dir), 1);
    assert_int_equal(entries(t), 2);
    /* by prefix only, and (a directory nobody writes to now) whatever the pid, this process's own too */
    assert_int_equal(pc_sweep_tmp_names(t->dir, "9-", PC_SWEEP_ANY_PID), 0);
    assert_int_equal(entries(t), 2);
    path_in(t, "0-4.tmp.x.0", p, sizeof(p)); /* not a pid: not such a name */
    assert_int_equal(pc_write_file(p, "x", 1), 0);
    assert_int_equal(pc_sweep_tmp_names(t->dir, "0-", PC_SWEEP_ANY_PID), 2);
    assert_int_equal(entries(t), 1);
    /* NAME.tmp.PID without the counter (key files before pc_open_tmp): only when asked for */
    path_in(t, "0-5.tmp.999999999", p, sizeof(p));
    assert_int_equal(pc_write_file(p, "x", 1), 0);
    path_in(t, "0-6.tmp.999999999x", p, sizeof(p)); /* not such a name either way */
    assert_int_equal(pc_write_file(p, "x", 1), 0);
    assert_int_equal(pc_sweep_tmp(t->dir), 0);
    assert_int_equal(pc_sweep_tmp_names(t->dir, "0-", PC_SWEEP_BARE_PID), 1);
    assert_int_equal(entries(t), 2);
    close(fd);
}

static void *drain_slowly(void *arg)
{
    int fd = *(int *)arg;
    char buf[4096];
    usleep(100000); /* the writer meets a full pipe first */
    size_t got = 0;
    for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;)
        got += (size_t)n;
    return (void *)got;
}

/* Our stdout may be a pipe its parent made non-blocking: a report bigger than the pipe met EAGAIN and
 * failed; it now waits for the reader. */
static void a_non_blocking_descriptor_is_waited_for(void **state)
{
    (void)state;
    int pf[2];
    assert_int_equal(pipe(pf), 0);
    assert_int_equal(fcntl(pf[1], F_SETFL, fcntl(pf[1], F_GETFL) | O_NONBLOCK), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, drain_slowly, &pf[0]), 0);
    static char big[300000];
    memset(big, 'x', sizeof(big));
    char name[64];
    snprintf(name, sizeof(name), "/dev/fd/%d", pf[1]);
    assert_int_equal(pc_write_file(name, big, sizeof(big)), 0);
    close(pf[1]);
    void *got = NULL;
    pthread_join(th, &got);
    close(pf[0]);
    assert_int_equal((size_t)got, sizeof(big));
}

/* Two writers of one file each put a whole one in place: the temporary name is the process's own. */
static void temporary_names_are_each_writers_own(void **state)
{
    tmpdir *t = *state;
    char p[128], a[PC_TMP_PATH_MAX], b[PC_TMP_PATH_MAX];
    path_in(t, "pin", p, sizeof(p));
    int fa = pc_open_tmp(p, a, 0600), fb = pc_open_tmp(p, b, 0600);
    assert_true(fa >= 0 && fb >= 0);
    assert_string_not_equal(a, b);
    close(fa);
    close(fb);
    unlink(a);
    unlink(b);
}

/* A pipe (like a device or a terminal) named as the file is written into and stays what it was: before,
 * the temporary file was renamed over it (as root, --report /dev/full became a regular file). */
static void a_pipe_is_written_into_not_replaced(void **state)
{
    tmpdir *t = *state;
    char p[128];
    path_in(t, "fifo", p, sizeof(p));
    assert_int_equal(mkfifo(p, 0600), 0);
    int rd = open(p, O_RDWR | O_NONBLOCK); /* a reader, so that opening for writing does not wait */
    assert_true(rd >= 0);
    assert_int_equal(pc_write_file(p, "report", 6), 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    assert_int_equal(entries(t), 1);
    char buf[16] = "";
    assert_int_equal(read(rd, buf, sizeof(buf)), 6);
    assert_memory_equal(buf, "report", 6);
    close(rd);
}

static void a_directory_is_refused(void **state)
{
    tmpdir *t = *state;
    char p[128];
    path_in(t, "sub", p, sizeof(p));
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(pc_write_file(p, "x", 1), PC_EINVAL);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
}

static void reads_are_bounded(void **state)
{
    tmpdir *t = *state;
    char p[128];
    path_in(t, "big", p, sizeof(p));
    assert_int_equal(pc_write_file(p, "0123456789", 10), 0);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(pc_read_file(p, 9, &text, &len), PC_ETOOBIG);
    assert_null(text);
    assert_int_equal(pc_read_file(p, 10, &text, &len), 0);
    assert_int_equal(len, 10);
    free(text);
}

static void mkdirs_makes_parents_and_refuses_a_file_in_the_way(void **state)
{
    tmpdir *t = *state;
    char p[200], f[160];
    path_in(t, "a/b/c", p, sizeof(p));
    assert_int_equal(pc_mkdirs(p), 0);
    assert_int_equal(pc_mkdirs(p), 0); /* already there */
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    path_in(t, "file", f, sizeof(f));
    assert_int_equal(pc_write_file(f, "x", 1), 0);
    assert_int_equal(pc_mkdirs(f), PC_EEXIST); /* it was taken for a directory that exists */
    snprintf(p, sizeof(p), "%s/below", f);
    assert_int_not_equal(pc_mkdirs(p), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_regular_file_is_replaced_whole, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(a_pipe_is_written_into_not_replaced, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(a_directory_is_refused, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(a_link_is_followed_not_replaced, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(links_are_followed_a_hop_at_a_time, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(our_own_descriptors_are_written_where_they_stand, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(temporary_names_are_each_writers_own, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test(a_non_blocking_descriptor_is_waited_for),
        cmocka_unit_test_setup_teardown(leftovers_of_dead_writers_are_swept, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(reads_are_bounded, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(mkdirs_makes_parents_and_refuses_a_file_in_the_way, tmpdir_setup, tmpdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
