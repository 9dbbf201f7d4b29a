/* libsodium wrappers (and libgcrypt's BLAKE2b-256 where it is the faster); see pc_crypto.h. */
#include "pc_crypto.h"
#include "pc_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gcrypt.h>

#include "pc_log.h"

/*
 * BLAKE2b-256 of segments is the largest CPU cost of a peer's downloads (every byte from a peer is
 * hashed before it is kept or played). Two mature libraries compute it:
 * libsodium with its SIMD code (AVX2 where the CPU has it), and libgcrypt, whose portable 64-bit code
 * we ask for by disabling its AVX2 and AVX-512 paths. Which is faster depends on the CPU: on the AMD
 * EPYC (Zen 4) machines we develop on, libsodium's AVX2 code hashes at 1.24 CPU s/GB and libgcrypt's
 * portable code at 0.61; elsewhere the SIMD code can be the faster. So each process times
 * both once, at pc_crypto_init, and keeps the faster; the digest is the same (RFC 7693), which
 * test_crypto checks for both. libgcrypt's hardware switches are process-wide and must be set before
 * its initialisation: when another library in the process initialised it first, its choice stands and
 * is timed as it is (in the origin, FFmpeg's libssh does). Any libgcrypt error (e.g. FIPS mode refusing
 * BLAKE2) falls back to libsodium. Only the one-shot pc_blake2b256 dispatches: the incremental pc_b2_*
 * and the file hash (the origin's publishing, where libsodium is the choice anyway) are libsodium's.
 */
#define B2_TIME_LEN (128u * 1024u) /* what the start-up timing hashes, three times with each library */

static _Atomic pc_b2_impl b2_impl = PC_B2_SODIUM; /* set once at init (pc_b2_use: tests, benches) */
static int gcrypt_ok;
static int init_rc;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static int gcrypt_hash(const void *data, size_t len, uint8_t out[PC_B2_LEN])
{
    gcry_buffer_t iov = {.size = len, .off = 0, .len = len, .data = (void *)(uintptr_t)data};
    return gcry_md_hash_buffers(GCRY_MD_BLAKE2B_256, 0, out, &iov, 1) == 0 ? 0 : PC_EINTERNAL;
}

static double thread_cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void gcrypt_setup(void)
{
    if (!gcry_control(GCRYCTL_ANY_INITIALIZATION_P)) {
        /* one name per call: libgcrypt stops at the first name it does not know (1.10 has no AVX-512
         * switch), and an unknown name is no error here */
        static const char *const simd[] = {"intel-avx2", "intel-avx512"};
        for (size_t k = 0; k < sizeof(simd) / sizeof(simd[0]); k++) {
            gcry_error_t e = gcry_control(GCRYCTL_DISABLE_HWF, simd[k], NULL);
            if (e != 0 && gcry_err_code(e) != GPG_ERR_INV_NAME)
                PC_LOGW("crypto", "libgcrypt: cannot turn off %s: %s", simd[k], gcry_strerror(e));
        }
        if (gcry_check_version(GCRYPT_VERSION) == NULL)
            return;
        (void)gcry_control(GCRYCTL_DISABLE_SECMEM, 0);
        (void)gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
    }
    /* a known answer before it is trusted with anything: BLAKE2b-256("abc") */
    static const uint8_t abc[PC_B2_LEN] = {0xbd, 0xdd, 0x81, 0x3c, 0x63, 0x42, 0x39, 0x72, 0x31, 0x71, 0xef,
                                           0x3f, 0xee, 0x98, 0x57, 0x9b, 0x94, 0x96, 0x4e, 0x3b, 0xb1, 0xcb,
                                           0x3e, 0x42, 0x72, 0x62, 0xc8, 0xc0, 0x68, 0xd5, 0x23, 0x19};
    uint8_t h[PC_B2_LEN];
    gcrypt_ok = gcrypt_hash("abc", 3, h) == 0 && memcmp(h, abc, sizeof(h)) == 0;
}

static void b2_choose(void)
{
    if (!gcrypt_ok)
        return;
    uint8_t *buf = malloc(B2_TIME_LEN), h[PC_B2_LEN];
    if (buf == NULL)
        return;
    randombytes_buf(buf, B2_TIME_LEN);
    double best[2] = {1e9, 1e9};
    for (int round = 0; round < 3; round++) {
        double t0 = thread_cpu_s();
        crypto_generichash(h, PC_B2_LEN, buf, B2_TIME_LEN, NULL, 0);
        double t1 = thread_cpu_s();
        int bad = gcrypt_hash(buf, B2_TIME_LEN, h);
        double t2 = thread_cpu_s();
        if (bad) { /* libgcrypt failed after its known answer: not trusted for the process */
            gcrypt_ok = 0;
            free(buf);
            return;
        }
        best[0] = t1 - t0 < best[0] ? t1 - t0 : best[0];
        best[1] = t2 - t1 < best[1] ? t2 - t1 : best[1];
    }
    free(buf);
    b2_impl = best[1] < best[0] ? PC_B2_GCRYPT : PC_B2_SODIUM;
}

static void init_once_fn(void)
{
    if (sodium_init() < 0) {
        init_rc = PC_EINTERNAL;
        return;
    }
    gcrypt_setup();
    b2_choose();
}

int pc_crypto_init(void)
{
    pthread_once(&init_once, init_once_fn);
    return init_rc;
}

pc_b2_impl pc_b2_current(void)
{
    return b2_impl;
}

int pc_b2_use(pc_b2_impl impl)
{
    if (impl == PC_B2_GCRYPT && !gcrypt_ok)
        return PC_EINTERNAL;
    b2_impl = impl;
    return 0;
}

const char *pc_b2_name(pc_b2_impl impl)
{
    return impl == PC_B2_GCRYPT ? "libgcrypt" : "libsodium";
}

static int read_exact_file(const char *path, uint8_t *out, size_t len)
{
    /* O_NONBLOCK: a FIFO in the path's place does not block the open (it is refused below) */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT ? PC_ENOENT : PC_EIO;
    struct stat st;
    int r = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        r = PC_EIO;
    else if ((size_t)st.st_size != len)
        r = PC_EPARSE;
    else if (read(fd, out, len) != (ssize_t)len)
        r = PC_EIO;
    close(fd);
    return r;
}

/* Writes |len| bytes to |path| atomically (temp file, fsync, link without replacing). */
static int write_new_file(const char *path, const uint8_t *data, size_t len)
{
    char tmp[PC_TMP_PATH_MAX];
    int fd = pc_open_tmp(path, tmp, 0600);
    if (fd < 0)
        return fd;
    int r = 0;
    if (write(fd, data, len) != (ssize_t)len || fsync(fd) != 0)
        r = PC_EIO;
    close(fd);
    if (r == 0 && link(tmp, path) != 0)
        r = errno == EEXIST ? PC_EEXIST : pc_err_from_errno(errno);
    unlink(tmp);
    if (r == 0) /* the key's name durable too: a power cut must not make a new key peers never pinned */
        r = pc_fsync_parent(path);
    return r;
}

/* The temporary files a process killed while creating |path| left (a secret key each), in both the
 * names of pc_open_tmp and the NAME.tmp.PID of the versions before it. */
static void sweep_key_tmp(const char *path)
{
    char dir[PC_TMP_PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if ((size_t)(slash - path) < sizeof(dir))
        snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
    else
        return;
    char prefix[PC_TMP_PATH_MAX];
    if (snprintf(prefix, sizeof(prefix), "%s.tmp.", slash != NULL ? slash + 1 : path) < (int)sizeof(prefix))
        pc_sweep_tmp_names(dir, prefix, PC_SWEEP_BARE_PID);
}

int pc_secret_load_or_create(const char *path, uint8_t *key, size_t len)
{
    sweep_key_tmp(path);
    int r = read_exact_file(path, key, len);
    if (r != PC_ENOENT)
        return r;
    randombytes_buf(key, len);
    r = write_new_file(path, key, len);
    if (r == PC_EEXIST) /* lost a race with another process: use its key */
        return read_exact_file(path, key, len);
    return r;
}

int pc_secret_load(const char *path, uint8_t *key, size_t len)
{
    return read_exact_file(path, key, len);
}

int pc_ed25519_load_or_create(const char *path, uint8_t pk[PC_ED25519_PK_LEN], uint8_t sk[PC_ED25519_SK_LEN])
{
    sweep_key_tmp(path);
    int r = read_exact_file(path, sk, PC_ED25519_SK_LEN);
    if (r == PC_ENOENT) {
        crypto_sign_keypair(pk, sk);
        r = write_new_file(path, sk, PC_ED25519_SK_LEN);
        if (r == PC_EEXIST)
            r = read_exact_file(path, sk, PC_ED25519_SK_LEN);
    }
    if (r != 0)
        return r;
    /* libsodium's secret key is the seed then the public key: a file whose second half is not the seed's
     * public key would publish a key that verifies nothing signed with the first */
    uint8_t pk2[PC_ED25519_PK_LEN], sk2[PC_ED25519_SK_LEN];
    crypto_sign_seed_keypair(pk2, sk2, sk);
    int same = sodium_memcmp(sk2, sk, PC_ED25519_SK_LEN) == 0;
    sodium_memzero(sk2, sizeof(sk2));
    if (!same) {
        sodium_memzero(sk, PC_ED25519_SK_LEN);
        return PC_EPARSE;
    }
    memcpy(pk, pk2, PC_ED25519_PK_LEN);
    return 0;
}

void pc_ed25519_sign(const uint8_t sk[PC_ED25519_SK_LEN], const void *msg, size_t len, uint8_t sig[PC_ED25519_SIG_LEN])
{
    crypto_sign_detached(sig, NULL, msg, len, sk);
}

int pc_ed25519_verify(const uint8_t pk[PC_ED25519_PK_LEN], const void *msg, size_t len, const uint8_t sig[PC_ED25519_SIG_LEN])
{
    return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ? 0 : PC_EBADSIG;
}

void pc_b2_init(pc_b2_state *st)
{
    crypto_generichash_init(st, NULL, 0, PC_B2_LEN);
}

void pc_b2_update(pc_b2_state *st, const void *data, size_t len)
{
    crypto_generichash_update(st, data, len);
}

void pc_b2_final(pc_b2_state *st, uint8_t out[PC_B2_LEN])
{
    crypto_generichash_final(st, out, PC_B2_LEN);
}

void pc_blake2b256(const void *data, size_t len, uint8_t out[PC_B2_LEN])
{
    if (b2_impl != PC_B2_GCRYPT || gcrypt_hash(data, len, out) != 0)
        crypto_generichash(out, PC_B2_LEN, data, len, NULL, 0);
}

int pc_blake2b256_file(const char *path, uint8_t out[PC_B2_LEN], uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? PC_ENOENT : PC_EIO;
    pc_b2_state st;
    pc_b2_init(&st);
    static _Thread_local uint8_t buf[1 << 16];
    uint64_t total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            close(fd);
            return PC_EIO;
        }
        if (n == 0)
            break;
        pc_b2_update(&st, buf, (size_t)n);
        total += (uint64_t)n;
    }
    close(fd);
    pc_b2_final(&st, out);
    if (size != NULL)
        *size = total;
    return 0;
}

void pc_hmac_sha256(const uint8_t key[32], const void *msg, size_t len, uint8_t out[PC_HMAC_LEN])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, 32);
    crypto_auth_hmacsha256_update(&st, msg, len);
    crypto_auth_hmacsha256_final(&st, out);
}

int pc_ct_equal(const void *a, const void *b, size_t len)
{
    return sodium_memcmp(a, b, len) == 0;
}

void pc_hex(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

int pc_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int pc_unhex(const char *in, size_t inlen, uint8_t *out, size_t outlen)
{
    if (inlen != 2 * outlen)
        return PC_EPARSE;
    for (size_t i = 0; i < outlen; i++) {
        int hi = pc_hex_digit((unsigned char)in[2 * i]), lo = pc_hex_digit((unsigned char)in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return PC_EPARSE;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static int b64_variant(int url)
{
    return url ? sodium_base64_VARIANT_URLSAFE_NO_PADDING : sodium_base64_VARIANT_ORIGINAL;
}

size_t pc_b64_encoded_len(size_t len, int url)
{
    return sodium_base64_ENCODED_LEN(len, b64_variant(url));
}

size_t pc_b64_encode(const uint8_t *in, size_t len, char *out, int url)
{
    sodium_bin2base64(out, pc_b64_encoded_len(len, url), in, len, b64_variant(url));
    return strlen(out);
}

int pc_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t outmax, size_t *outlen, int url)
{
    /* the decoded length is known from the input's length: past the output's size is "too big" */
    size_t n = inlen, pad = 0;
    while (n > 0 && pad < 2 && in[n - 1] == '=')
        n--, pad++;
    if (n / 4 * 3 + (n % 4 > 1 ? n % 4 - 1 : 0) > outmax)
        return PC_ETOOBIG;
    const char *end = NULL;
    size_t got = 0;
    if (sodium_base642bin(out, outmax, in, inlen, NULL, &got, &end, b64_variant(url)) != 0 || end != in + inlen)
        return PC_EPARSE;
    if (outlen != NULL)
        *outlen = got;
    return 0;
}

void pc_random_id(char *out, size_t n)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[randombytes_uniform(32)];
    out[n] = '\0';
}
