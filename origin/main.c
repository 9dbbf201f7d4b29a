/* peercdn-origin: command-line entry (serve, upload). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libavutil/log.h>

#include "origin_main.h"
#include "pc_cli.h"
#include "pc_crypto.h"
#include "pc_manifest.h"
#include "pc_http_server.h"
#include "pc_log.h"

static const char usage[] =
    "usage: peercdn-origin serve --data DIR --listen HOST:PORT --upload-token TOKEN [options]\n"
    "       peercdn-origin upload FILE --origin URL --token TOKEN [--title T] [--parallel N] [--chunk-mb N]\n"
    "                             [--wait] [--state FILE] [--no-progress]\n"
    "\n"
    "serve options:\n"
    "  --data DIR              data directory (created if missing; one origin per directory)\n"
    "  --listen HOST:PORT      address to listen on; port 0 picks a free port\n"
    "  --upload-token TOKEN    bearer token for POST /api/uploads and DELETE (or $PEERCDN_UPLOAD_TOKEN)\n"
    "  --tracker URL           tracker announced in p2p.json\n"
    "  --tracker-key BASE64    tracker Ed25519 public key (default: fetched from URL/api/tracker-key)\n"
    "  --public-url URL        base URL for absolute upload URLs (default: from the Host header)\n"
    "  --workers N             transcoding worker threads, 1 to 64 (default: number of CPUs, at most 64)\n"
    "  --segment-seconds S     CMAF segment duration, an even number of seconds, 2 to 20 (default 4)\n"
    "  --preset NAME           x264 preset (default veryfast)\n"
    "  --x264-threads N        threads per x264 encoder (default 1: parallelism comes from chunks)\n"
    "  --crf Q                 capped CRF under each rung's VBV ceiling (default 21); 0 = ABR at the rung bitrate\n"
    "  --lease-seconds S       task lease; a crashed worker's task is retried after this (default 30)\n"
    "  --signed-media          serve /v/ only with ?exp=&sig= (see docs/origin.md)\n"
    "  --cache-mb N            memory for hot segments served from RAM (default 256; 0 disables)\n"
    "  --max-uploads N         upload requests with a body (and joins) received at once, 1 to 4096; more are\n"
    "                          told 503 and to retry (default 64; a body holds 1.25 MiB of buffers)\n"
    "  --idle-timeout S        a connection idle, or a request head not complete, this long is closed (default 30)\n"
    "  --media-token-ttl S     lifetime of media signatures handed out by the API (default 21600)\n"
    "  --upload-ttl S          unfinished uploads expire after S seconds (default 86400)\n"
    "  --log-level LEVEL       error, warn, info (default) or debug\n"
    "\n"
    "upload options:\n"
    "  --origin URL            origin base URL, e.g. http://127.0.0.1:8080\n"
    "  --token TOKEN           upload token (or $PEERCDN_UPLOAD_TOKEN)\n"
    "  --title TITLE           video title, at most 511 bytes (default: the file name)\n"
    "  --parallel N            parallel partial uploads joined by tus concatenation, 1 to 32 (default 4)\n"
    "  --chunk-mb N            bytes per PATCH request in MiB, 1 to 1024 (default 16)\n"
    "  --wait                  wait for processing and print the final state\n"
    "  --state FILE            resume state file (default ~/.cache/peercdn/uploads/...)\n"
    "  --no-progress           no progress bar even on a terminal\n";

/* x264's preset names (x264.h's x264_preset_names): anything else fails only at the first encode. */
static int x264_preset_known(const char *p)
{
    static const char *const names[] = {"ultrafast", "superfast", "veryfast", "faster", "fast", "medium",
                                        "slow", "slower", "veryslow", "placebo"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(p, names[i]) == 0)
            return 1;
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    pc_origin_config c;
    memset(&c, 0, sizeof(c));
    c.upload_token = getenv("PEERCDN_UPLOAD_TOKEN");
    c.workers = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (c.workers < 1)
        c.workers = 1;
    if (c.workers > 64) /* --workers' own limit: the pipeline tracks its running jobs in a fixed table */
        c.workers = 64;
    c.segment_seconds = 4;
    c.preset = "veryfast";
    c.crf = 21;
    c.cache_mb = 256;
    c.max_uploads = 64;
    c.lease_ms = 30000;
    c.media_token_ttl_s = 6 * 3600;
    c.upload_ttl_s = 24 * 3600;
    c.creation_ttl_s = 3600;
    const char *test_ttl = getenv("PEERCDN_TEST_CREATION_TTL_S"); /* tests: creation URLs that expire in seconds */
    if (test_ttl != NULL && atoi(test_ttl) > 0)
        c.creation_ttl_s = atoi(test_ttl);
    c.idle_timeout_s = 30;
    enum { O_DATA = PC_CLI_LONG_FIRST, O_LISTEN, O_TOKEN, O_TRACKER, O_TRACKER_KEY, O_PUBLIC, O_WORKERS, O_SEG, O_PRESET, O_LEASE,
           O_SIGNED, O_MTTL, O_UTTL, O_LOG, O_X264T, O_CRF, O_CACHE, O_MAXUP, O_IDLE, O_HELP };
    static const struct option opts[] = {
        {"data", required_argument, NULL, O_DATA},
        {"listen", required_argument, NULL, O_LISTEN},
        {"upload-token", required_argument, NULL, O_TOKEN},
        {"tracker", required_argument, NULL, O_TRACKER},
        {"tracker-key", required_argument, NULL, O_TRACKER_KEY},
        {"public-url", required_argument, NULL, O_PUBLIC},
        {"workers", required_argument, NULL, O_WORKERS},
        {"segment-seconds", required_argument, NULL, O_SEG},
        {"preset", required_argument, NULL, O_PRESET},
        {"x264-threads", required_argument, NULL, O_X264T},
        {"crf", required_argument, NULL, O_CRF},
        {"lease-seconds", required_argument, NULL, O_LEASE},
        {"signed-media", no_argument, NULL, O_SIGNED},
        {"cache-mb", required_argument, NULL, O_CACHE}, {"max-uploads", required_argument, NULL, O_MAXUP},
        {"idle-timeout", required_argument, NULL, O_IDLE},
        {"media-token-ttl", required_argument, NULL, O_MTTL},
        {"upload-ttl", required_argument, NULL, O_UTTL},
        {"log-level", required_argument, NULL, O_LOG},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case O_DATA: c.data_dir = optarg; break;
        case O_LISTEN: c.listen = optarg; break;
        case O_TOKEN: c.upload_token = optarg; break;
        case O_TRACKER: c.tracker_url = optarg; break;
        case O_TRACKER_KEY: c.tracker_key = optarg; break;
        case O_PUBLIC: c.public_url = optarg; break;
        case O_WORKERS: c.workers = (int)pc_cli_int(optarg, "--workers", 1, 64); break;
        case O_SEG: c.segment_seconds = pc_cli_num(optarg, "--segment-seconds", 2, 20); break;
        case O_PRESET: c.preset = optarg; break;
        case O_X264T: c.x264_threads = (int)pc_cli_int(optarg, "--x264-threads", 1, 16); break;
        case O_CRF: c.crf = pc_cli_num(optarg, "--crf", 0, 51); break;
        case O_LEASE: c.lease_ms = (int64_t)(pc_cli_int(optarg, "--lease-seconds", 1, 3600) * 1000); break;
        case O_SIGNED: c.signed_media = 1; break;
        case O_CACHE: c.cache_mb = (int)pc_cli_int(optarg, "--cache-mb", 0, 1 << 20); break;
        case O_MAXUP: c.max_uploads = (int)pc_cli_int(optarg, "--max-uploads", 1, 4096); break;
        case O_IDLE: c.idle_timeout_s = (int)pc_cli_int(optarg, "--idle-timeout", 1, 3600); break;
        case O_MTTL: c.media_token_ttl_s = (int64_t)pc_cli_int(optarg, "--media-token-ttl", 1, 1e9); break;
        case O_UTTL: c.upload_ttl_s = (int64_t)pc_cli_int(optarg, "--upload-ttl", 1, 1e9); break;
        case O_LOG: pc_cli_log_level(optarg); break;
        case O_HELP: fputs(usage, stdout); return 0;
        default:
            pc_cli_bad_option(argv);
        }
    }
    if (optind < argc)
        pc_cli_usage("serve takes no positional arguments");
    if (c.data_dir == NULL || c.listen == NULL)
        pc_cli_usage("serve needs --data DIR and --listen HOST:PORT");
    struct sockaddr_storage ss;
    if (pc_hostport_parse(c.listen, &ss) != 0)
        pc_cli_usage("--listen wants IP:PORT (IPv6 in brackets), not '%s'", c.listen);
    if (c.data_dir[0] == '\0')
        pc_cli_usage("--data wants a directory");
    if (c.upload_token == NULL || c.upload_token[0] == '\0')
        pc_cli_usage("serve needs --upload-token TOKEN (or $PEERCDN_UPLOAD_TOKEN)");
    int seg = (int)c.segment_seconds;
    if (seg != c.segment_seconds || seg % 2 != 0)
        pc_cli_usage("--segment-seconds must be an even whole number (segments hold whole 2-second GOPs)");
    if (c.tracker_url != NULL && !pc_cli_is_http_url(c.tracker_url))
        pc_cli_usage("--tracker must be an http(s) URL");
    if (c.tracker_url != NULL && strlen(c.tracker_url) > PC_MANIFEST_MAX_TRACKER_URL) /* peers refuse a manifest with it */
        pc_cli_usage("--tracker must be at most %d characters", PC_MANIFEST_MAX_TRACKER_URL);
    if (c.public_url != NULL && !pc_cli_is_http_url(c.public_url))
        pc_cli_usage("--public-url must be an http(s) URL");
    static char public_url[2048];
    if (c.public_url != NULL) { /* "http://host/" and "http://host" alike: paths are appended with their '/' */
        size_t n = strlen(c.public_url);
        while (n > 0 && c.public_url[n - 1] == '/')
            n--;
        if (n >= sizeof(public_url))
            pc_cli_usage("--public-url: at most %zu characters", sizeof(public_url) - 1);
        memcpy(public_url, c.public_url, n);
        public_url[n] = '\0';
        c.public_url = public_url;
    }
    if (c.tracker_key != NULL) {
        uint8_t key[PC_ED25519_PK_LEN];
        size_t n = 0;
        if (pc_b64_decode(c.tracker_key, strlen(c.tracker_key), key, sizeof(key), &n, 0) != 0 || n != sizeof(key))
            pc_cli_usage("--tracker-key must be the base64 of a 32-byte Ed25519 public key");
    }
    if (!x264_preset_known(c.preset))
        pc_cli_usage("--preset takes one of x264's presets: ultrafast, superfast, veryfast, faster, fast, medium, "
                     "slow, slower, veryslow, placebo");
    return pc_origin_serve(&c);
}

static int cmd_upload(int argc, char **argv)
{
    pc_upload_opts u;
    memset(&u, 0, sizeof(u));
    u.token = getenv("PEERCDN_UPLOAD_TOKEN");
    u.parallel = 4;
    u.progress = -1;
    u.chunk = 16 << 20;
    enum { O_ORIGIN = PC_CLI_LONG_FIRST, O_TOKEN, O_TITLE, O_PAR, O_WAIT, O_STATE, O_NOPROG, O_CHUNK, O_HELP };
    static const struct option opts[] = {
        {"origin", required_argument, NULL, O_ORIGIN},
        {"token", required_argument, NULL, O_TOKEN},
        {"title", required_argument, NULL, O_TITLE},
        {"parallel", required_argument, NULL, O_PAR},
        {"wait", no_argument, NULL, O_WAIT},
        {"state", required_argument, NULL, O_STATE},
        {"no-progress", no_argument, NULL, O_NOPROG},
        {"chunk-mb", required_argument, NULL, O_CHUNK},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case O_ORIGIN: u.origin = optarg; break;
        case O_TOKEN: u.token = optarg; break;
        case O_TITLE:
            if (optarg[0] == '\0')
                pc_cli_usage("--title must not be empty (without it, the file's name is the title)");
            if (strlen(optarg) > PC_TITLE_MAX) /* the origin would cut it: say so rather than store less */
                pc_cli_usage("--title is at most %d bytes (this one has %zu)", PC_TITLE_MAX, strlen(optarg));
            u.title = optarg;
            break;
        case O_PAR: u.parallel = (int)pc_cli_int(optarg, "--parallel", 1, 32); break;
        case O_WAIT: u.wait = 1; break;
        case O_STATE: u.state = optarg; break;
        case O_NOPROG: u.progress = 0; break;
        case O_CHUNK: u.chunk = (int64_t)pc_cli_int(optarg, "--chunk-mb", 1, 1024) << 20; break;
        case O_HELP: fputs(usage, stdout); return 0;
        default:
            pc_cli_bad_option(argv);
        }
    }
    if (optind != argc - 1)
        pc_cli_usage("upload takes exactly one FILE");
    u.file = argv[optind];
    if (u.origin == NULL || u.token == NULL)
        pc_cli_usage("upload needs --origin URL and --token TOKEN");
    if (!pc_cli_is_http_url(u.origin))
        pc_cli_usage("--origin must be an http(s) URL");
    return pc_origin_upload(&u);
}

int main(int argc, char **argv)
{
    pc_cli_init("peercdn-origin");
    if (argc < 2)
        pc_cli_usage("missing command: serve or upload");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (pc_cli_start_libraries() != 0)
        return 1;
    av_log_set_level(AV_LOG_ERROR);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(argv[1], "serve") != 0 && strcmp(argv[1], "upload") != 0)
        pc_cli_usage("unknown command '%s'", argv[1]);
    int rc = strcmp(argv[1], "serve") == 0 ? cmd_serve(argc - 1, argv + 1) : cmd_upload(argc - 1, argv + 1);
    curl_global_cleanup();
    return rc;
}
