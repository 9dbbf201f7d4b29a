/* pc_fs: whole-file writes (atomic for regular files, into the file for devices and pipes), bounded reads. */
#include <errno.h>
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

static void a_regular_file_is_replaced_whole(void **state)
{
    tmpdir *t = *state;
    char p[128], tmp[128];
    path_in(t, "file", p, sizeof(p));
    path_in(t, "file.tmp", tmp, sizeof(tmp));
    assert_int_equal(pc_write_file(p, "first version", 13), 0);
    assert_int_equal(pc_write_file(p, "second", 6), 0);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(pc_read_file(p, 100, &text, &len), 0);
    assert_int_equal(len, 6);
    assert_string_equal(text, "second");
    free(text);
    struct stat st;
    assert_int_not_equal(stat(tmp, &st), 0); /* no temporary file left beside it */
}

/* A pipe (like a device or a terminal) named as the file is written into and stays what it was: before,
 * the temporary file was renamed over it (as root, --report /dev/full became a regular file). */
static void a_pipe_is_written_into_not_replaced(void **state)
{
    tmpdir *t = *state;
    char p[128], tmp[128];
    path_in(t, "fifo", p, sizeof(p));
    path_in(t, "fifo.tmp", tmp, sizeof(tmp));
    assert_int_equal(mkfifo(p, 0600), 0);
    int rd = open(p, O_RDWR | O_NONBLOCK); /* a reader, so that opening for writing does not wait */
    assert_true(rd >= 0);
    assert_int_equal(pc_write_file(p, "report", 6), 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    assert_int_not_equal(stat(tmp, &st), 0);
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
        cmocka_unit_test_setup_teardown(reads_are_bounded, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(mkdirs_makes_parents_and_refuses_a_file_in_the_way, tmpdir_setup, tmpdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
