/*
 * One error table for the whole project (after libuv's UV_ERRNO_MAP).
 *
 * Every fallible function returns 0 or a negative PC_E* code. pc_err_name()
 * gives the stable machine-readable code that reaches users in HTTP JSON
 * bodies ({"code": ..., "message": ...}) and pc_strerror() the sentence.
 */
#ifndef PC_ERROR_H
#define PC_ERROR_H

#define PC_MUST_CHECK __attribute__((warn_unused_result))

/* XX(symbol, stable code, sentence) */
#define PC_ERRNO_MAP(XX)                                                                      \
    XX(EINVAL, "invalid_argument", "invalid argument")                                        \
    XX(ENOMEM, "out_of_memory", "out of memory")                                              \
    XX(ETOOBIG, "too_large", "input exceeds its size limit")                                  \
    XX(EPARSE, "malformed", "malformed input")                                                \
    XX(EIO, "io_error", "input/output error")                                                 \
    XX(ENOENT, "not_found", "not found")                                                      \
    XX(EEXIST, "already_exists", "already exists")                                            \
    XX(ENOSPC, "no_space", "no space left on device")                                         \
    XX(EAUTH, "unauthorized", "missing or wrong credentials")                                 \
    XX(EFORBIDDEN, "forbidden", "bad or expired signature")                                   \
    XX(EBADSIG, "bad_signature", "signature verification failed")                             \
    XX(EBADHASH, "bad_hash", "hash mismatch")                                                 \
    XX(ECONFLICT, "conflict", "conflicting state")                                            \
    XX(EEXPIRED, "expired", "expired")                                                        \
    XX(EWRONGVIDEO, "wrong_video", "the credential is for another video")                     \
    XX(EWRONGKEY, "wrong_key", "the credential names another key")                            \
    XX(ELIMIT, "limit_reached", "a configured capacity limit is reached")                     \
    XX(EAGAIN, "try_again", "temporary failure, try again")                                   \
    XX(ECANCELED, "canceled", "operation canceled")                                           \
    XX(ETIMEDOUT, "timed_out", "operation timed out")                                         \
    XX(ENET, "network_error", "network error")                                                \
    XX(EHTTP, "http_error", "unexpected HTTP status")                                         \
    XX(EDB, "database_error", "database error")                                               \
    XX(ENOTMEDIA, "not_media", "the file is not a media file FFmpeg recognises")              \
    XX(ENOVIDEO, "no_video_stream", "the file has no video stream")                           \
    XX(EUNDECODABLE, "undecodable", "the video stream cannot be decoded")                     \
    XX(EMEDIALIMIT, "media_limit", "the video exceeds a processing limit")                    \
    XX(EENCODE, "encode_failed", "encoding failed")                                           \
    XX(EINTERNAL, "internal_error", "internal error")                                         \
    XX(EDENIED, "permission_denied", "permission denied")                                     \
    XX(EROFS, "read_only_file_system", "read-only file system")                               \
    XX(EISDIR, "is_a_directory", "a directory is in the way")

enum pc_errno {
    PC_OK = 0,
    PC__ERRNO_BASE = -1000,
#define PC_XX(sym, code, msg) PC_##sym,
    PC_ERRNO_MAP(PC_XX)
#undef PC_XX
    PC__ERRNO_END
};

/* Sentence for |err| (0 gives "success"); unknown codes give "unknown error". Cannot fail. */
const char *pc_strerror(int err);
/* Stable code for |err|, e.g. "not_media"; unknown codes give "unknown". Cannot fail. */
const char *pc_err_name(int err);
/* Maps a POSIX errno value (positive) to the closest PC_E* code. Cannot fail. */
int pc_err_from_errno(int errnum);

/* Why the last call that failed on this thread failed, in words (the path, the OS's or SQLite's
 * reason), for a caller that reports the failure on one line; "" if none was recorded. Set by the
 * start-up calls that fail on bad input (pc_sqlite_open, pc_http_server_listen). */
const char *pc_err_detail(void);
__attribute__((format(printf, 1, 2))) void pc_err_detail_set(const char *fmt, ...);

#endif
