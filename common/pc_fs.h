/*
 * Small file-system helpers shared by the origin (media work) and the peer (segment cache, report):
 * mkdir -p, atomic whole-file writes (temporary file, then rename) and bounded whole-file reads; and the
 * servers' limit on open descriptors.
 */
#ifndef PC_FS_H
#define PC_FS_H

#include <stddef.h>

#include "pc_error.h"

/* mkdir -p (mode 0755); existing directories are fine, PC_EEXIST when |path| or a directory on the way to
 * it is something else (a file).
 * PC_ETOOBIG for a path over 4095 bytes, else the errno mapped by pc_err_from_errno. */
int pc_mkdirs(const char *path) PC_MUST_CHECK;
/* Writes |len| bytes to |path| atomically and durably: a temporary file of this process's own
 * (pc_open_tmp), its data synced, then rename and the directory synced (a power cut leaves the old file or
 * the whole new one, never an empty one under the new name); a failure leaves |path| as it was.
 * A |path| that exists but is not a regular file (a device, a pipe) is written into, never replaced
 * (a FIFO nobody reads is an error, not a wait); a directory is PC_EINVAL. A symbolic link is followed,
 * never replaced: what it leads to is written by these rules. /dev/stdout, /dev/stderr, /dev/fd/N and
 * /proc/self/fd/N are this process's descriptors, written at their offsets (pc_std_fd). */
int pc_write_file(const char *path, const void *data, size_t len) PC_MUST_CHECK;
/* |path| with its symbolic links followed one hop at a time (at most 8) into |out|: up to a name that is
 * not a link (which need not exist), or one of pc_std_fd's names, which are not followed further (the
 * kernel's /proc/self/fd/1 link leads to "pipe:[...]" for a pipe, a name no file has). */
#define PC_PATH_MAX 4096
int pc_follow_links(const char *path, char out[PC_PATH_MAX]) PC_MUST_CHECK;
/* The descriptor |path| names as one of this process's own (1 for /dev/stdout, 2 for /dev/stderr, N for
 * /dev/fd/N and /proc/self/fd/N), or -1. */
int pc_std_fd(const char *path);
/* The same, but whatever |path| names (a FIFO or a device planted in a cache) is replaced, never written
 * into; a directory fails the rename. For files the program owns. */
int pc_replace_file(const char *path, const void *data, size_t len) PC_MUST_CHECK;
/* The same with the new file's permission bits (0600 for a file holding a credential). */
int pc_replace_file_mode(const char *path, const void *data, size_t len, unsigned mode) PC_MUST_CHECK;
/* |path|.tmp.PID.N (into |tmp|), a name of this process's own, opened for writing as a new file (O_EXCL:
 * nothing planted under it is followed or opened): a descriptor, or a negative PC_E* code. The caller
 * writes it whole and renames it over |path| (what pc_replace_file does for a buffer), so processes
 * writing the same file at once each put a whole one in place. */
#define PC_TMP_PATH_MAX 4200
int pc_open_tmp(const char *path, char tmp[PC_TMP_PATH_MAX], unsigned mode) PC_MUST_CHECK;
/* fsync(2) of the directory |dir|, or of the directory holding |path|: what makes a rename or a link into
 * it durable. 0 or the errno mapped. */
int pc_fsync_dir(const char *dir) PC_MUST_CHECK;
int pc_fsync_parent(const char *path) PC_MUST_CHECK;
/* Removes from |dir| the temporary files (pc_open_tmp's names) of processes no longer running: what a
 * process killed between writing a file and renaming it left behind. Returns how many. */
int pc_sweep_tmp(const char *dir);
/* The same for the names that begin with |prefix| (NULL: any). |flags|: PC_SWEEP_ANY_PID, of every
 * process, this one included: for a directory nobody writes to at the moment (a pid may be the same
 * after a restart, as in a container); PC_SWEEP_BARE_PID, also NAME.tmp.PID, without the counter (how
 * key files were written before pc_open_tmp). */
enum { PC_SWEEP_ANY_PID = 1, PC_SWEEP_BARE_PID = 2 };
int pc_sweep_tmp_names(const char *dir, const char *prefix, unsigned flags);
/* Reads a whole file of at most |max| bytes (PC_ETOOBIG past it, checked before reading) into a
 * malloc'd, NUL-terminated buffer. Anything but a regular file (a FIFO, a device, a directory) is
 * PC_EINVAL, and never blocks. */
int pc_read_file(const char *path, size_t max, char **out, size_t *len) PC_MUST_CHECK;

/* Raises the process's soft limit on open descriptors to its hard limit (at most 1 << 20): a server holds
 * one per connection, and Debian's default soft limit, 1024, would refuse the 1025th client while the
 * hard limit allows far more. Logs a warning naming |component| when the limit stays below 4096.
 * Returns the limit in force (0 when it cannot be read). */
#define PC_NOFILE_WARN 4096
unsigned long pc_raise_nofile(const char *component);

#endif
