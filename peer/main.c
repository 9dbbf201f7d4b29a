/* peercdn-peer: the viewer client (play) and the seeder (seed); see docs/peer.md. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"
#include "pc_addr.h"
#include "pc_cli.h"
#include "pc_crypto.h"
#include "pc_fs.h"
#include "pc_http_server.h"
#include "pc_ticket.h"

static const char usage[] =
    "usage: peercdn-peer play --origin URL --video ID [options]\n"
    "       peercdn-peer seed --origin URL --video ID [options]\n"
    "\n"
    "play: verifies the video's signed manifest, starts from the CDN, pulls upcoming segments from peers\n"
    "the tracker vouches for, falls back to the CDN when they cannot keep up, serves other peers, and\n"
    "exits when playback ends. seed: fetches and verifies everything once, then serves until stopped.\n"
    "  --origin URL          the origin (CDN), e.g. http://127.0.0.1:8080\n"
    "  --video ID            the video id\n"
    "  --tracker URL         use this tracker URL instead of the manifest's (its key still comes from the manifest)\n"
    "  --listen HOST:PORT    peer port (default [::]:0: any free port, IPv6 and IPv4); with one address,\n"
    "                        announces go from that address too\n"
    "  --announce-addr IP    the address other peers should dial (default: what the tracker sees)\n"
    "  --up-kbps N           upload cap in kbit/s (default: none)\n"
    "  --down-kbps N         download cap in kbit/s (default: none)\n"
    "  --no-upload           serve nothing to other peers\n"
    "  --rendition auto|ID   let ABR choose (default), or pin a rendition\n"
    "  --hls-listen HOST:PORT  local HLS endpoint: http://HOST:PORT/v/ID/master.m3u8\n"
    "  --hls-linger SECONDS  play with --hls-listen: once playback ended, exit after the player made no\n"
    "                        request for this long; 0 = only on a signal (default 30)\n"
    "  --seed-after SECONDS  keep serving this long after playback ends\n"
    "  --watch-s SECONDS     quit playback after this long, as a viewer who leaves early (default: to the end)\n"
    "  --max-wait-s SECONDS  play: give up (exit 1) when playback has waited this long for data to start, resume\n"
    "                        or finish a seek, from the CDN and peers alike; 0 = never (default 120)\n"
    "  --report FILE         write the JSON report here at exit\n"
    "  --origin-key BASE64   the origin's Ed25519 key (default: pinned in --state-dir on first use)\n"
    "  --media-query QUERY   append ?QUERY to every media URL fetched from the origin: a signed-media origin's\n"
    "                        exp=E&sig=S, as the service's backend hands it out (GET /api/videos/ID)\n"
    "                        (or $PEERCDN_MEDIA_QUERY, which other local users cannot read)\n"
    "  --media-query-file FILE  read the query from FILE instead, and again whenever it changes: a backend\n"
    "                        renews the token of a long session by writing the new one there\n"
    "  --state-dir DIR       where pinned origin keys live (default $HOME/.local/state/peercdn)\n"
    "  --cache-dir DIR       keep verified segments on disk too (checked again when read back)\n"
    "  --mem-cap MIB         segment store in memory (default 1024)\n"
    "  --max-links N         peer links to dial at most (default 24)\n"
    "  --rng-seed N          engine randomness (default: from the clock)\n"
    "  --no-status           no status line on a terminal\n"
    "  --log-level LEVEL     error, warn, info (default) or debug\n";

/* 1 when the report could not be written at exit (pc_write_file): checked before playing, not after. */
static int report_unwritable(const char *path)
{
    struct stat st;
    size_t len = strlen(path);
    if (len == 0 || len > 4000 || path[len - 1] == '/')
        return 1;
    int sfd = pc_std_fd(path); /* our own output, written where it goes (pc_write_file) */
    if (sfd >= 0) {
        int fl = fcntl(sfd, F_GETFL);
        return fl < 0 || (fl & O_ACCMODE) == O_RDONLY;
    }
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) { /* followed, never replaced: check what it leads to */
        char to[PC_PATH_MAX];
        return pc_follow_links(path, to) != 0 || report_unwritable(to);
    }
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) /* a device or a pipe is written into */
        return S_ISDIR(st.st_mode) || access(path, W_OK) != 0;
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else
        snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
    return stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK | X_OK) != 0; /* a .tmp, then rename */
}

int main(int argc, char **argv)
{
    pc_cli_init("peercdn-peer");
    /* the buffers segments are assembled and fetched in (0.1 to a few MB each) in their own mappings,
     * returned whole when freed, as the store's copies are (pc_blobcache maps them itself): glibc's dynamic
     * threshold moved them onto the heap, where their holes kept RSS 50-80% above --mem-cap (45 MB at
     * --mem-cap 16; 28 MB with this; found by review) */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    if (argc < 2)
        pc_cli_usage("missing command: play or seed");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    pc_client_config cfg;
    pc_client_config_default(&cfg);
    /* a signed-media query from the environment: on the command line, every local user could read it in
     * /proc/PID/cmdline (--media-query still wins) */
    const char *mq = getenv("PEERCDN_MEDIA_QUERY");
    if (mq != NULL && mq[0] != '\0')
        cfg.media_query = mq[0] == '?' ? mq + 1 : mq;
    if (strcmp(argv[1], "seed") == 0)
        cfg.seed_mode = 1;
    else if (strcmp(argv[1], "play") != 0)
        pc_cli_usage("unknown command '%s' (play, seed)", argv[1]);
    enum { O_ORIGIN = PC_CLI_LONG_FIRST, O_VIDEO, O_TRACKER, O_LISTEN, O_ANNOUNCE, O_UP, O_DOWN, O_NOUP, O_REND, O_HLS, O_LINGER, O_SEEDAFTER,
           O_REPORT, O_WATCH, O_MAXWAIT, O_KEY, O_MQ, O_MQF, O_STATE, O_CACHE, O_MEM, O_LINKS, O_RNG, O_NOSTATUS, O_LOG, O_HELP };
    static const struct option opts[] = {
        {"origin", required_argument, NULL, O_ORIGIN}, {"video", required_argument, NULL, O_VIDEO},
        {"tracker", required_argument, NULL, O_TRACKER}, {"listen", required_argument, NULL, O_LISTEN},
        {"announce-addr", required_argument, NULL, O_ANNOUNCE}, {"up-kbps", required_argument, NULL, O_UP},
        {"down-kbps", required_argument, NULL, O_DOWN}, {"no-upload", no_argument, NULL, O_NOUP},
        {"rendition", required_argument, NULL, O_REND}, {"hls-listen", required_argument, NULL, O_HLS},
        {"hls-linger", required_argument, NULL, O_LINGER}, {"seed-after", required_argument, NULL, O_SEEDAFTER}, {"report", required_argument, NULL, O_REPORT},
        {"watch-s", required_argument, NULL, O_WATCH}, {"max-wait-s", required_argument, NULL, O_MAXWAIT},
        {"origin-key", required_argument, NULL, O_KEY}, {"media-query", required_argument, NULL, O_MQ},
        {"media-query-file", required_argument, NULL, O_MQF},
        {"state-dir", required_argument, NULL, O_STATE},
        {"cache-dir", required_argument, NULL, O_CACHE}, {"mem-cap", required_argument, NULL, O_MEM},
        {"max-links", required_argument, NULL, O_LINKS}, {"rng-seed", required_argument, NULL, O_RNG},
        {"no-status", no_argument, NULL, O_NOSTATUS}, {"log-level", required_argument, NULL, O_LOG},
        {"help", no_argument, NULL, O_HELP}, {NULL, 0, NULL, 0}};
    int ch, no_status = 0, linger_given = 0, up_given = 0, mq_given = 0, max_wait_given = 0, seed_after_given = 0;
    opterr = 0;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case O_ORIGIN: cfg.origin = optarg; break;
        case O_VIDEO: cfg.video = optarg; break;
        case O_TRACKER: cfg.tracker = optarg; break;
        case O_LISTEN: cfg.listen = optarg; break;
        case O_ANNOUNCE: cfg.announce_addr = optarg; break;
        case O_UP: cfg.up_kbps = (uint64_t)pc_cli_int(optarg, "--up-kbps", 1, 100000000), up_given = 1; break;
        case O_DOWN: cfg.down_kbps = (uint64_t)pc_cli_int(optarg, "--down-kbps", 1, 100000000); break;
        case O_NOUP: cfg.no_upload = 1; break;
        case O_REND: cfg.rendition = optarg; break;
        case O_HLS: cfg.hls_listen = optarg; break;
        case O_LINGER: cfg.hls_linger_s = pc_cli_num(optarg, "--hls-linger", 0, 1e7), linger_given = 1; break;
        case O_SEEDAFTER: cfg.seed_after_s = pc_cli_num(optarg, "--seed-after", 0, 1e7), seed_after_given = 1; break;
        case O_REPORT: cfg.report = optarg; break;
        case O_WATCH: cfg.watch_s = pc_cli_num(optarg, "--watch-s", 0.001, 1e7); break;
        case O_MAXWAIT: cfg.max_wait_s = pc_cli_num(optarg, "--max-wait-s", 0, 1e7), max_wait_given = 1; break;
        case O_KEY: cfg.origin_key = optarg; break;
        case O_MQ: cfg.media_query = optarg[0] == '?' ? optarg + 1 : optarg, mq_given = 1; break;
        case O_MQF: cfg.media_query_file = optarg; break;
        case O_STATE: cfg.state_dir = optarg; break;
        case O_CACHE: cfg.cache_dir = optarg; break;
        case O_MEM: cfg.mem_cap = (size_t)pc_cli_int(optarg, "--mem-cap", 16, 1 << 20) << 20; break;
        case O_LINKS: cfg.max_links = (uint32_t)pc_cli_int(optarg, "--max-links", 1, 200); break;
        case O_RNG: cfg.seed = (uint64_t)pc_cli_int(optarg, "--rng-seed", 1, 9007199254740992.0); break;
        case O_NOSTATUS: no_status = 1; break;
        case O_LOG: pc_cli_log_level(optarg); break;
        case O_HELP: fputs(usage, stdout); return 0;
        default: pc_cli_bad_option(argv);
        }
    }
    if (optind != argc)
        pc_cli_usage("unexpected argument '%s'", argv[optind]);
    if (cfg.rendition[0] == '\0')
        pc_cli_usage("--rendition takes auto or a rendition id");
    if (linger_given && (cfg.hls_listen == NULL || cfg.seed_mode))
        pc_cli_usage("--hls-linger is for play with --hls-listen");
    if (cfg.seed_mode && (strcmp(cfg.rendition, "auto") != 0 || cfg.watch_s > 0 || seed_after_given || max_wait_given))
        pc_cli_usage("--rendition, --watch-s, --seed-after and --max-wait-s are for play: seed serves every rendition "
                     "until stopped");
    if (cfg.origin == NULL || cfg.video == NULL)
        pc_cli_usage("%s needs --origin URL and --video ID", argv[1]);
    if (!pc_video_id_valid(cfg.video, strlen(cfg.video)))
        pc_cli_usage("--video: 1 to 64 characters of A-Z a-z 0-9 _ -");
    if (!pc_cli_is_http_url(cfg.origin) || strlen(cfg.origin) > PC_CLIENT_URL_MAX)
        pc_cli_usage("--origin wants an http:// or https:// URL of at most %d characters", PC_CLIENT_URL_MAX);
    if (cfg.tracker != NULL && (!pc_cli_is_http_url(cfg.tracker) || strlen(cfg.tracker) > PC_CLIENT_URL_MAX))
        pc_cli_usage("--tracker wants an http:// or https:// URL of at most %d characters", PC_CLIENT_URL_MAX);
    uint8_t pk[PC_ED25519_PK_LEN];
    size_t pkn = 0;
    if (cfg.origin_key != NULL && (pc_b64_decode(cfg.origin_key, strlen(cfg.origin_key), pk, sizeof(pk), &pkn, 0) != 0 ||
                                   pkn != sizeof(pk)))
        pc_cli_usage("--origin-key wants the base64 of a 32-byte Ed25519 public key");
    if (mq_given && cfg.media_query_file != NULL)
        pc_cli_usage("--media-query and --media-query-file: give one");
    if (cfg.media_query_file != NULL)
        cfg.media_query = NULL; /* the file's, not $PEERCDN_MEDIA_QUERY's */
    if (cfg.media_query != NULL && !pc_client_query_valid(cfg.media_query))
        pc_cli_usage("--media-query wants 1 to %d characters of a URL query (no spaces, '#' or quotes), as the "
                     "origin issued it", PC_CLIENT_QUERY_MAX);
    if (cfg.seed_mode && cfg.no_upload)
        pc_cli_usage("--no-upload is for play: a seeder that serves nothing would be listed and refuse everyone");
    if (cfg.no_upload && up_given)
        pc_cli_usage("--no-upload and --up-kbps: give one");
    struct stat cst;
    if (cfg.cache_dir != NULL && (cfg.cache_dir[0] == '\0' || (stat(cfg.cache_dir, &cst) == 0 && !S_ISDIR(cst.st_mode))))
        pc_cli_usage("--cache-dir wants a directory, not '%s'", cfg.cache_dir);
    if (cfg.report != NULL && report_unwritable(cfg.report))
        pc_cli_usage("--report: cannot write '%s'", cfg.report);
    /* addresses are checked here, before anything is fetched: a bad one is a usage error, not a late one */
    struct sockaddr_storage ss;
    if (cfg.listen != NULL && pc_hostport_parse(cfg.listen, &ss) != 0)
        pc_cli_usage("--listen wants IP:PORT (IPv6 in brackets), not '%s'", cfg.listen);
    if (cfg.hls_listen != NULL && pc_hostport_parse(cfg.hls_listen, &ss) != 0)
        pc_cli_usage("--hls-listen wants IP:PORT (IPv6 in brackets), not '%s'", cfg.hls_listen);
    uint8_t ip[16];
    if (cfg.announce_addr != NULL && pc_addr_parse(cfg.announce_addr, ip) != 0)
        pc_cli_usage("--announce-addr wants an IPv4 or IPv6 address, not '%s'", cfg.announce_addr);
    if (cfg.announce_addr != NULL && !pc_addr_dialable(ip))
        pc_cli_usage("--announce-addr wants an address other peers can dial (not unspecified, multicast or "
                     "broadcast), not '%s'", cfg.announce_addr);
    struct stat dst;
    if (cfg.state_dir != NULL && (cfg.state_dir[0] == '\0' || (mkdir(cfg.state_dir, 0700) != 0 && errno != EEXIST) ||
                                  stat(cfg.state_dir, &dst) != 0 || !S_ISDIR(dst.st_mode)))
        pc_cli_usage("--state-dir: '%s' is not a directory that can be created", cfg.state_dir);
    static char state[4096];
    if (cfg.state_dir == NULL) {
        const char *home = getenv("HOME");
        if (home != NULL && snprintf(state, sizeof(state), "%s/.local/state/peercdn", home) < (int)sizeof(state)) {
            char parent[4096];
            snprintf(parent, sizeof(parent), "%s/.local", home);
            mkdir(parent, 0700);
            snprintf(parent, sizeof(parent), "%s/.local/state", home);
            mkdir(parent, 0700);
            cfg.state_dir = state;
        }
    }
    cfg.status_line = !no_status && isatty(2);
    const char *corrupt = getenv("PEERCDN_TEST_CORRUPT_UPLOADS");
    cfg.corrupt_uploads = corrupt != NULL && strcmp(corrupt, "1") == 0;
    /* tests: a segment store smaller than --mem-cap allows (KiB), so that a short test video overflows it */
    const char *cap_kib = getenv("PEERCDN_TEST_MEM_CAP_KIB");
    if (cap_kib != NULL && atoi(cap_kib) > 0)
        cfg.mem_cap = (size_t)atoi(cap_kib) << 10;
    /* tests: this machine's clock shifted by so many seconds (a viewer whose clock is off) */
    const char *shift = getenv("PEERCDN_TEST_CLOCK_SHIFT_S");
    if (shift != NULL)
        cfg.clock_shift_s = atoi(shift);
    if (pc_cli_start_libraries() != 0)
        return 1;
    return pc_client_run(&cfg);
}
