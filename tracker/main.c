/* peercdn-tracker: command-line entry (serve, stats). */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_cli.h"
#include "pc_http_server.h"
#include "pc_log.h"
#include "pc_ticket.h"
#include "tracker.h"

static const char usage[] =
    "usage: peercdn-tracker serve --listen HOST:PORT --db FILE [options]\n"
    "       peercdn-tracker stats --tracker URL [--video ID] [--json]\n"
    "\n"
    "serve options:\n"
    "  --listen HOST:PORT      address to listen on; port 0 picks a free port\n"
    "  --db FILE               SQLite file for the key, statistics and their history (created if missing)\n"
    "  --key FILE              Ed25519 key file (64 bytes, created if missing; default: kept in the database)\n"
    "  --interval S            announce interval in seconds; peers expire after two (default 30)\n"
    "  --ticket-ttl S          lifetime of peer tickets, at least 4 x interval (default 3600)\n"
    "  --max-peers N           live peers across all videos (default 2000000)\n"
    "  --max-videos N          videos with statistics (default 1000000)\n"
    "  --scan N                candidates examined per peer selection (default 512)\n"
    "  --rate-limit N          announces per second per address, 0 = none (default 100)\n"
    "  --rate-burst N          burst allowance per address (default 4 x rate)\n"
    "  --locality FILE         \"CIDR REGION [ASN]\" lines for peers that give no locality\n"
    "  --origin URL            admit a new video only once this origin publishes it (GET URL/api/videos/ID)\n"
    "  --media-key FILE        the signed-media origin's DATA/keys/media.key: announces must carry the video's\n"
    "                          media token, and no ticket outlives it\n"
    "  --history-interval S    resolution of the statistics history, 1 s at least (default 60)\n"
    "  --history-days D        history kept (default 30)\n"
    "  --distrust-reports N    networks whose viewers must report a peer banned before it is listed to no\n"
    "                          one in that video, 1 to 8, 0 = never (default 3)\n"
    "  --log-level LEVEL       error, warn, info (default) or debug\n"
    "\n"
    "stats options:\n"
    "  --tracker URL           tracker base URL, e.g. http://127.0.0.1:7070\n"
    "  --video ID              one video only\n"
    "  --json                  the raw /stats document\n";

static int cmd_serve(int argc, char **argv)
{
    pc_tracker_config c = {
        .interval_s = 30,
        .ticket_ttl_s = 3600,
        .max_peers = 2000000,
        .max_videos = 1000000,
        .scan = 512,
        .rate = 100,
        .burst = -1,
        .history_s = 60,
        .history_keep_s = 30 * 86400,
        .distrust_reports = 3,
    };
    enum { O_LISTEN = PC_CLI_LONG_FIRST, O_DB, O_KEY, O_INTERVAL, O_TTL, O_MAXP, O_MAXV, O_SCAN, O_RATE, O_BURST, O_LOC, O_HIST,
           O_HDAYS, O_LOG, O_ORIGIN, O_DISTRUST, O_MEDIA_KEY, O_HELP };
    static const struct option opts[] = {
        {"listen", required_argument, NULL, O_LISTEN},
        {"db", required_argument, NULL, O_DB},
        {"key", required_argument, NULL, O_KEY},
        {"interval", required_argument, NULL, O_INTERVAL},
        {"ticket-ttl", required_argument, NULL, O_TTL},
        {"max-peers", required_argument, NULL, O_MAXP},
        {"max-videos", required_argument, NULL, O_MAXV},
        {"scan", required_argument, NULL, O_SCAN},
        {"rate-limit", required_argument, NULL, O_RATE},
        {"rate-burst", required_argument, NULL, O_BURST},
        {"locality", required_argument, NULL, O_LOC},
        {"origin", required_argument, NULL, O_ORIGIN},
        {"history-interval", required_argument, NULL, O_HIST},
        {"history-days", required_argument, NULL, O_HDAYS},
        {"log-level", required_argument, NULL, O_LOG},
        {"distrust-reports", required_argument, NULL, O_DISTRUST},
        {"media-key", required_argument, NULL, O_MEDIA_KEY},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case O_LISTEN: c.listen = optarg; break;
        case O_DB: c.db_path = optarg; break;
        case O_KEY: c.key_path = optarg; break;
        case O_INTERVAL: c.interval_s = pc_cli_num(optarg, "--interval", 0.1, 86400); break;
        case O_TTL: c.ticket_ttl_s = (int64_t)pc_cli_int(optarg, "--ticket-ttl", 10, 7 * 86400); break;
        case O_MAXP: c.max_peers = (uint32_t)pc_cli_int(optarg, "--max-peers", 1, 100000000); break;
        case O_MAXV: c.max_videos = (uint32_t)pc_cli_int(optarg, "--max-videos", 1, 100000000); break;
        case O_SCAN: c.scan = (uint32_t)pc_cli_int(optarg, "--scan", 1, 1000000); break;
        case O_RATE: c.rate = pc_cli_num(optarg, "--rate-limit", 0, 1e9); break;
        case O_BURST: c.burst = pc_cli_num(optarg, "--rate-burst", 1, 1e9); break;
        case O_LOC: c.locality_path = optarg; break;
        case O_ORIGIN: c.origin = optarg; break;
        case O_MEDIA_KEY: c.media_key_path = optarg; break;
        /* rows are keyed by the second (a shorter interval overwrote its rows) */
        case O_HIST: c.history_s = pc_cli_num(optarg, "--history-interval", 1, 86400); break;
        case O_HDAYS: c.history_keep_s = (int64_t)(pc_cli_num(optarg, "--history-days", 0, 36500) * 86400); break;
        case O_LOG: pc_cli_log_level(optarg); break;
        case O_DISTRUST: c.distrust_reports = (uint32_t)pc_cli_int(optarg, "--distrust-reports", 0, 8); break;
        case O_HELP: fputs(usage, stdout); return 0;
        default: pc_cli_bad_option(argv);
        }
    }
    if (optind < argc)
        pc_cli_usage("serve takes no positional arguments");
    if (c.listen == NULL || c.db_path == NULL || c.db_path[0] == '\0')
        pc_cli_usage("serve needs --listen HOST:PORT and --db FILE");
    struct sockaddr_storage ss;
    if (pc_hostport_parse(c.listen, &ss) != 0)
        pc_cli_usage("--listen wants IP:PORT (IPv6 in brackets), not '%s'", c.listen);
    if (c.origin != NULL && (!pc_cli_is_http_url(c.origin) || strlen(c.origin) > 1000))
        pc_cli_usage("--origin must be an http(s) URL of at most 1000 characters");
    if (c.burst < 0)
        c.burst = c.rate * 4 > 1 ? c.rate * 4 : 1;
    if ((double)c.ticket_ttl_s < 4 * c.interval_s)
        pc_cli_usage("--ticket-ttl must be at least 4 x --interval (tickets are renewed in their last quarter)");
    return pc_tracker_serve(&c);
}

static int cmd_stats(int argc, char **argv)
{
    const char *url = NULL, *video = NULL;
    int json = 0;
    enum { O_TRACKER = PC_CLI_LONG_FIRST, O_VIDEO, O_JSON, O_HELP };
    static const struct option opts[] = {
        {"tracker", required_argument, NULL, O_TRACKER},
        {"video", required_argument, NULL, O_VIDEO},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case O_TRACKER: url = optarg; break;
        case O_VIDEO: video = optarg; break;
        case O_JSON: json = 1; break;
        case O_HELP: fputs(usage, stdout); return 0;
        default: pc_cli_bad_option(argv);
        }
    }
    if (optind < argc)
        pc_cli_usage("stats takes no positional arguments");
    if (url == NULL)
        pc_cli_usage("stats needs --tracker URL");
    if (!pc_cli_is_http_url(url))
        pc_cli_usage("--tracker must be an http(s) URL");
    if (video != NULL && !pc_video_id_valid(video, strlen(video)))
        pc_cli_usage("--video: 1 to 64 characters of A-Z a-z 0-9 _ -");
    return pc_tracker_stats_cli(url, video, json);
}

int main(int argc, char **argv)
{
    pc_cli_init("peercdn-tracker");
    if (argc < 2)
        pc_cli_usage("missing command: serve or stats");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (pc_cli_start_libraries() != 0)
        return 1;
    int rc;
    if (strcmp(argv[1], "serve") == 0)
        rc = cmd_serve(argc - 1, argv + 1);
    else if (strcmp(argv[1], "stats") == 0)
        rc = cmd_stats(argc - 1, argv + 1);
    else
        pc_cli_usage("unknown command (serve or stats)");
    curl_global_cleanup();
    return rc;
}
