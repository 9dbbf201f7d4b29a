/*
 * peercdn-sim emulate: a scenario executed with real processes — the tracker, the origin (which
 * ingests and transcodes generated videos) and one peercdn-peer per viewer, started at the times the
 * simulator would start them (sim/workload.c draws the same viewers for the same scenario and seed).
 * As root, each peer gets its own network namespace on a bridge, with tbf rate limits (and netem
 * latency when the kernel has it); otherwise the peers' own rate caps on loopback stand in. The
 * peers' reports become the simulator's outputs (summary.json, timeseries.csv, viewers.csv, plots), so a
 * simulation and an emulation compare field by field. docs/sim.md, "Emulation".
 *
 * The orchestrator is a plain loop: it spawns, polls every 20 ms and reaps; nothing here is on a
 * hot path.
 */
#include "emulate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bound.h"
#include "media.h"
#include "pc_buf.h"
#include "pc_cli.h"
#include "pc_crypto.h"
#include "pc_fs.h"
#include "pc_http_client.h"
#include "pc_manifest.h"
#include "report.h"
#include "scenario.h"

/* |s| as one shell word for the commands printed to paste: as it is when nothing in it is special to a
 * shell, else in single quotes (a quote as '\''). |buf| holds 4 × strlen(s) + 3 bytes at least. */
static const char *shq(char *buf, size_t n, const char *s)
{
    if (s[0] != '\0' && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:@%+=,-") == strlen(s))
        return s;
    size_t w = 0;
    if (w < n)
        buf[w++] = '\'';
    for (const char *p = s; *p != '\0' && w + 5 < n; p++) {
        if (*p == '\'') {
            memcpy(buf + w, "'\\''", 4);
            w += 4;
        } else {
            buf[w++] = *p;
        }
    }
    if (w + 2 <= n) {
        buf[w++] = '\'';
        buf[w] = '\0';
    } else if (n > 0) {
        buf[n - 1] = '\0';
    }
    return buf;
}
#include "workload.h"

#define EMU_VIEWERS_MAX 400  /* processes on one machine; each peer is a real process */
#define EMU_VIDEOS_MAX 8     /* each is generated and transcoded before the run */
#define EMU_VIDEO_S_MAX 1800
#define EMU_REPORT_MAX (8 << 20)
#define EMU_MANIFEST_MAX (16 << 20)
#define EMU_PEER_NUMWANT 30     /* what peercdn-peer asks the tracker for (peer/client.c NUMWANT) */
#define EMU_PEER_LINKS_MAX 200  /* peercdn-peer --max-links at most */
#define PATHMAX 4096
#define DIRMAX 1024   /* the output directory and ours: paths under them fit PATHMAX */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    g_stop = sig; /* the exit status is 128 + it */
}

typedef struct proc {
    pid_t pid;
    int running, status;
    int termed; /* sent SIGTERM (stop_proc, or reap because we are stopping) */
    int late;   /* spawned after a signal asked us to stop: the clean-up's own helpers, let finish */
    char log[PATHMAX];
} proc;

typedef struct evideo {
    char id[128];
    double len_s;
    char *json;
    pc_manifest *mf;
    pc_peer_media pm;
    int pm_ok;
} evideo;

typedef struct eviewer {
    sim_arrival a;
    int seeder;
    proc p;
    int spawned, exited, ok;
    int stopped;            /* sent SIGTERM at the scenario's end */
    uint32_t result;        /* its index in the sim_result */
    double spawn_s, exit_s;
    char ns[40], host_if[16], ip[32];
    char report[PATHMAX];
    json_t *rep;
} eviewer;

typedef struct emu {
    sim_scenario sc;
    char *sc_text; /* the scenario file as read at the start: DIR/scenario.json is made from it, not a second read */
    size_t sc_len;
    uint64_t seed;
    const char *out;
    char dir[DIRMAX], bindir[DIRMAX];
    int quiet, keep, tty;
    /* network */
    int netns, netem, subnet;
    char bridge[16], host_ip[32];
    int bridge_up;
    /* processes */
    proc tracker, origin;
    char tracker_url[128], origin_url[128], origin_key[128], token[64];
    evideo *v;
    eviewer *w;
    uint32_t nw, nseeders;
    double t0, end_s;
    json_t *notes;  /* what the emulation could not do as the scenario says */
    json_t *stats;  /* the tracker's /stats at the end */
    int server_died;
} emu;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void say(const emu *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(emu *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(emu *e, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    json_array_append_new(e->notes, json_string(buf));
    say(e, "note: %s\n", buf); /* stdout, with the progress: stderr carries one line, the error, when one ends the run */
}

/* An error of the set-up, on stderr; none once a signal asked us to stop (what failed then was stopped). */
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    if (g_stop)
        return;
    va_list ap;
    va_start(ap, fmt);
    pc_cli_verror(fmt, ap);
    va_end(ap);
}

static void say(const emu *e, const char *fmt, ...)
{
    if (e->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (e->tty)
        fputs("\r\033[K", stdout);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

/* ---- processes ---- */

/* Starts |argv| with stdin from /dev/null and stdout and stderr appended to |log|. */
static int spawn(proc *p, char *const argv[], const char *log)
{
    snprintf(p->log, sizeof(p->log), "%s", log);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return PC_EIO;
    fflush(NULL);
    /* SIGINT and SIGTERM held from before the fork until the child has its default actions: one that came
     * in between ran the orchestrator's handler in the child (its own copy of g_stop), which then played
     * on, was killed 15 s later and counted as a failed peer (found by review). Held, it is delivered
     * afterwards: to the orchestrator, and to the child, which it stops at once. */
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, &old);
    pid_t pid = fork();
    if (pid < 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        close(fd);
        return PC_EIO;
    }
    if (pid == 0) {
        /* a tracker, origin or seeder outlives no orchestrator killed with -9 (they ran on for good) */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() == 1)
            _exit(1);
        /* a group of its own: a Ctrl-C on the terminal goes to the orchestrator alone, which stops the
         * viewers first and reads the tracker's /stats; the tracker and origin, hit by it too, were gone
         * before (found by review) */
        setpgid(0, 0);
        int in = open("/dev/null", O_RDONLY);
        if (in >= 0)
            dup2(in, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(argv[0], argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(fd);
    p->pid = pid;
    p->running = 1;
    p->termed = 0;
    p->late = g_stop != 0;
    return 0;
}

/* Waits for |p| up to |timeout_s| (then SIGKILL); its exit status, 128 + signal, or -1. Once a signal asks
 * us to stop, |p| is asked too (SIGTERM, then SIGKILL after 5 s): a helper generating or ingesting a video
 * is not waited for to the end. Not one spawned after the signal: the clean-up's own (ip netns del). */
/* Whether |p| has exited (its status recorded), without waiting. */
static int exited_now(proc *p)
{
    if (!p->running)
        return 1;
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
        p->running = 0;
        p->status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
        return 1;
    }
    if (r < 0) {
        p->running = 0;
        p->status = -1;
        return 1;
    }
    return 0;
}

static int reap(proc *p, double timeout_s)
{
    if (!p->running)
        return p->status;
    double until = mono() + timeout_s;
    for (;;) {
        if (exited_now(p))
            return p->status;
        if (g_stop && !p->termed && !p->late) {
            p->termed = 1;
            kill(p->pid, SIGTERM);
            until = mono() + 5 < until ? mono() + 5 : until;
        }
        if (mono() >= until) {
            kill(p->pid, SIGKILL);
            until = mono() + 5;
        }
        sleep_ms(10);
    }
}

static void stop_proc(proc *p, double grace_s)
{
    if (p->running) {
        kill(p->pid, SIGTERM);
        p->termed = 1; /* its grace is |grace_s|, not reap's 5 s for helpers */
        reap(p, grace_s);
    }
}

/* Runs helper |argv| to completion, its output appended to logs/|log|; its exit status. */
static int run_argv(emu *e, const char *log, double timeout_s, char *const argv[])
{
    char path[PATHMAX];
    snprintf(path, sizeof(path), "%s/logs/%s", e->dir, log);
    proc p = {0};
    if (spawn(&p, argv, path) != 0)
        return -1;
    return reap(&p, timeout_s);
}

/* Runs a helper command (split on spaces; our own names only, no paths) to completion; its exit status. */
static int run(emu *e, const char *log, double timeout_s, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int run(emu *e, const char *log, double timeout_s, const char *fmt, ...)
{
    char line[2048], *argv[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    int n = 0;
    for (char *save = NULL, *t = strtok_r(line, " ", &save); t != NULL && n < 63; t = strtok_r(NULL, " ", &save))
        argv[n++] = t;
    argv[n] = NULL;
    return run_argv(e, log, timeout_s, argv);
}

/* Waits for "listening on http://HOST:PORT" in |p|'s log; the URL into |url|. */
static int wait_listening(proc *p, const char *what, char *url, size_t len)
{
    double until = mono() + 20;
    while (mono() < until && !g_stop) {
        char *txt = NULL;
        size_t n = 0;
        if (pc_read_file(p->log, 1 << 20, &txt, &n) == 0) {
            const char *s = strstr(txt, "listening on http://");
            if (s != NULL) {
                s += strlen("listening on ");
                size_t k = strcspn(s, " \n\t)");
                snprintf(url, len, "%.*s", (int)k, s);
                free(txt);
                return 0;
            }
            free(txt);
        }
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->running = 0;
            fail("the %s exited at start; see %s", what, p->log);
            return PC_EIO;
        }
        sleep_ms(50);
    }
    fail("the %s did not start listening; see %s", what, p->log);
    return PC_ETIMEDOUT;
}

/* ---- the network ---- */

static int iface_taken(const char *addrs, int s)
{
    char pfx[16];
    snprintf(pfx, sizeof(pfx), " 10.%d.", s);
    return strstr(addrs, pfx) != NULL;
}

/* Removes namespaces and bridges left by emulations whose process is gone. */
static void net_sweep(emu *e)
{
    char path[PATHMAX], *txt = NULL;
    size_t n = 0;
    snprintf(path, sizeof(path), "%s/logs/netns-list.txt", e->dir);
    unlink(path);
    if (run(e, "netns-list.txt", 10, "ip netns list") != 0 || pc_read_file(path, 1 << 20, &txt, &n) != 0)
        return;
    for (char *save = NULL, *l = strtok_r(txt, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        unsigned pid, i;
        if (sscanf(l, "peercdn-%u-%u", &pid, &i) == 2 && kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            char ns[64];
            snprintf(ns, sizeof(ns), "peercdn-%u-%u", pid, i);
            (void)run(e, "net.log", 10, "ip netns del %s", ns);
            char br[16];
            snprintf(br, sizeof(br), "pcbr%u", pid);
            (void)run(e, "net.log", 10, "ip link del %s", br);
        }
    }
    free(txt);
}

/* Decides the network: namespaces when we may create them (and --network allows), else loopback. */
static int net_setup(emu *e, const char *want)
{
    snprintf(e->host_ip, sizeof(e->host_ip), "127.0.0.1");
    if (strcmp(want, "loopback") == 0) {
        note(e, "network: loopback (--network loopback); the peers' own rate caps stand in for access links");
        return 0;
    }
    const char *why = NULL;
    char probe[40];
    snprintf(probe, sizeof(probe), "peercdn-%d-probe", (int)getpid());
    if (geteuid() != 0)
        why = "not root";
    else if (run(e, "net.log", 10, "ip netns add %s", probe) != 0)
        why = "'ip netns add' failed (see logs/net.log)";
    else
        (void)run(e, "net.log", 10, "ip netns del %s", probe);
    if (why != NULL) {
        if (strcmp(want, "netns") == 0) {
            fail("--network netns: cannot create network namespaces: %s", why);
            return PC_EFORBIDDEN;
        }
        note(e, "network: loopback, because network namespaces are unavailable (%s); the peers' own rate caps "
                "stand in for access links",
             why);
        return 0;
    }
    net_sweep(e);
    /* a free 10.S.0.0/16 for the bridge */
    char path[PATHMAX], *addrs = NULL;
    size_t n = 0;
    snprintf(path, sizeof(path), "%s/logs/addrs.txt", e->dir);
    if (run(e, "addrs.txt", 10, "ip -o -4 addr show") != 0 || pc_read_file(path, 1 << 20, &addrs, &n) != 0) {
        fail("cannot list the host's addresses (see %s)", path);
        return PC_EIO;
    }
    int base = 64 + (int)(getpid() % 150);
    e->subnet = 0;
    for (int k = 0; k < 150 && e->subnet == 0; k++) {
        int s = 64 + (base - 64 + k) % 150;
        if (!iface_taken(addrs, s))
            e->subnet = s;
    }
    free(addrs);
    if (e->subnet == 0) {
        fail("no free 10.x.0.0/16 for the emulation bridge");
        return PC_EIO;
    }
    snprintf(e->bridge, sizeof(e->bridge), "pcbr%d", (int)getpid());
    snprintf(e->host_ip, sizeof(e->host_ip), "10.%d.0.1", e->subnet);
    if (run(e, "net.log", 10, "ip link add %s type bridge", e->bridge) != 0) {
        fail("cannot create the bridge %s (see %s/logs/net.log)", e->bridge, e->dir);
        return PC_EIO;
    }
    e->bridge_up = 1;
    if (run(e, "net.log", 10, "ip addr add %s/16 dev %s", e->host_ip, e->bridge) != 0 ||
        run(e, "net.log", 10, "ip link set %s up", e->bridge) != 0) {
        fail("cannot configure the bridge %s (see %s/logs/net.log)", e->bridge, e->dir);
        return PC_EIO;
    }
    e->netns = 1;
    /* netem (latency) is a kernel module some kernels lack; rates only need tbf */
    if (run(e, "net.log", 10, "ip link add pcq%d type dummy", (int)getpid()) == 0) {
        e->netem = run(e, "net.log", 10, "tc qdisc add dev pcq%d root netem delay 10ms", (int)getpid()) == 0;
        (void)run(e, "net.log", 10, "ip link del pcq%d", (int)getpid());
    }
    if (e->netem)
        note(e, "network: a namespace per peer on bridge %s (10.%d.0.0/16), tbf rates and netem latency", e->bridge,
             e->subnet);
    else
        note(e, "network: a namespace per peer on bridge %s (10.%d.0.0/16) with tbf rates; latency is not "
                "emulated (this kernel has no netem)",
             e->bridge, e->subnet);
    return 0;
}

static int tbf(emu *e, const char *ns, const char *dev, const char *parent, double kbps)
{
    if (kbps < 1) /* an uplink of 0 (a viewer who uploads nothing: the peer's own cap says so) */
        kbps = 1;
    double bps = kbps * 1000 / 8;
    unsigned burst = bps * 0.02 > 3200 ? (unsigned)(bps * 0.02) : 3200;
    if (ns != NULL)
        return run(e, "net.log", 10, "ip netns exec %s tc qdisc add dev %s %s tbf rate %.0fkbit burst %u latency 300ms",
                   ns, dev, parent, kbps, burst);
    return run(e, "net.log", 10, "tc qdisc add dev %s %s tbf rate %.0fkbit burst %u latency 300ms", dev, parent, kbps,
               burst);
}

/* The one-way latency the emulated network gives between regions |a| and |b|: each side delays by half its
 * own region's latency (net_add), so the mean of the two regions' own latencies. */
static double emu_latency_ms(const sim_scenario *sc, uint32_t a, uint32_t b)
{
    return (sc->latency_ms[a][a] + sc->latency_ms[b][b]) / 2;
}

/* When the scenario's latency between two regions is not what the emulated network gives them. */
static void note_cross_region(emu *e)
{
    const sim_scenario *sc = &e->sc;
    for (uint32_t a = 0; a < sc->n_regions; a++)
        for (uint32_t b = a + 1; b < sc->n_regions; b++)
            if (fabs(sc->latency_ms[a][b] - emu_latency_ms(sc, a, b)) > 0.05) {
                note(e, "latency between regions is not emulated as given (%s-%s %.0f ms): each side of a link delays "
                        "by half its own region's latency, so a pair of regions gets the mean of theirs (%.0f ms "
                        "here; DIR/scenario.json has these)",
                     sc->region_name[a], sc->region_name[b], sc->latency_ms[a][b], emu_latency_ms(sc, a, b));
                return;
            }
}

/* Viewer |i|'s namespace: a veth pair to the bridge, its address, upload (its side) and download (the
 * bridge side) rates, and half the one-way latency on each side when netem exists. */
static int net_add(emu *e, uint32_t i, double up_kbps, double down_kbps, double latency_ms)
{
    eviewer *w = &e->w[i];
    int pid = (int)getpid();
    snprintf(w->ns, sizeof(w->ns), "peercdn-%d-%u", pid, i);
    snprintf(w->host_if, sizeof(w->host_if), "ph%d-%u", pid % 1000000, i % 1000);
    char peer_if[16];
    snprintf(peer_if, sizeof(peer_if), "pp%d-%u", pid % 1000000, i % 1000);
    snprintf(w->ip, sizeof(w->ip), "10.%d.%u.%u", e->subnet, 1 + i / 250, 1 + i % 250);
    int rc = run(e, "net.log", 10, "ip netns add %s", w->ns);
    rc = rc ? rc : run(e, "net.log", 10, "ip link add %s type veth peer name %s", w->host_if, peer_if);
    rc = rc ? rc : run(e, "net.log", 10, "ip link set %s netns %s", peer_if, w->ns);
    rc = rc ? rc : run(e, "net.log", 10, "ip link set %s master %s", w->host_if, e->bridge);
    rc = rc ? rc : run(e, "net.log", 10, "ip link set %s up", w->host_if);
    rc = rc ? rc : run(e, "net.log", 10, "ip -n %s addr add %s/16 dev %s", w->ns, w->ip, peer_if);
    rc = rc ? rc : run(e, "net.log", 10, "ip -n %s link set %s up", w->ns, peer_if);
    rc = rc ? rc : run(e, "net.log", 10, "ip -n %s link set lo up", w->ns);
    if (rc == 0 && e->netem && latency_ms > 0) {
        rc = run(e, "net.log", 10, "ip netns exec %s tc qdisc add dev %s root handle 1: netem delay %.1fms", w->ns,
                 peer_if, latency_ms / 2);
        rc = rc ? rc : tbf(e, w->ns, peer_if, "parent 1:1 handle 10:", up_kbps);
        rc = rc ? rc : run(e, "net.log", 10, "tc qdisc add dev %s root handle 1: netem delay %.1fms", w->host_if,
                           latency_ms / 2);
        rc = rc ? rc : tbf(e, NULL, w->host_if, "parent 1:1 handle 10:", down_kbps);
    } else if (rc == 0) {
        rc = tbf(e, w->ns, peer_if, "root", up_kbps);
        rc = rc ? rc : tbf(e, NULL, w->host_if, "root", down_kbps);
    }
    if (rc != 0)
        fail("cannot set up the network of peer %u (see %s/logs/net.log)", i, e->dir);
    return rc != 0 ? PC_EIO : 0;
}

static void net_teardown(emu *e)
{
    for (uint32_t i = 0; i < e->nw; i++)
        if (e->w[i].ns[0] != '\0') {
            (void)run(e, "net.log", 10, "ip netns del %s", e->w[i].ns);
            e->w[i].ns[0] = '\0';
        }
    if (e->bridge_up) {
        (void)run(e, "net.log", 10, "ip link del %s", e->bridge);
        e->bridge_up = 0;
    }
}

/* ---- content ---- */

/* Apple's HLS authoring ladder, which the origin plans from the source (never upscaling). */
static const struct {
    int w, h;
    uint32_t kbps;
} ladder[] = {{416, 234, 145}, {640, 360, 365}, {768, 432, 730}, {960, 540, 2000}, {1280, 720, 3000}, {1920, 1080, 6000}};

static int start_servers(emu *e)
{
    char bin[PATHMAX], db[PATHMAX], log[PATHMAX], listen[64], interval[32], data[PATHMAX], seg[16];
    snprintf(bin, sizeof(bin), "%s/../tracker/peercdn-tracker", e->bindir);
    snprintf(db, sizeof(db), "%s/tracker.db", e->dir);
    snprintf(log, sizeof(log), "%s/logs/tracker.log", e->dir);
    snprintf(listen, sizeof(listen), "%s:0", e->host_ip);
    snprintf(interval, sizeof(interval), "%g", e->sc.announce_interval_s);
    char *targv[] = {bin, "serve", "--listen", listen, "--db", db, "--interval", interval, "--rate-limit", "0",
                     NULL};
    if (spawn(&e->tracker, targv, log) != 0 || wait_listening(&e->tracker, "tracker", e->tracker_url,
                                                              sizeof(e->tracker_url)) != 0)
        return PC_EIO;
    snprintf(bin, sizeof(bin), "%s/../origin/peercdn-origin", e->bindir);
    snprintf(data, sizeof(data), "%s/origin", e->dir);
    snprintf(log, sizeof(log), "%s/logs/origin.log", e->dir);
    snprintf(seg, sizeof(seg), "%.0f", e->sc.segment_s);
    char *oargv[] = {bin, "serve", "--data", data, "--listen", listen, "--upload-token", e->token, "--tracker",
                     e->tracker_url, "--segment-seconds", seg, "--crf", "0", NULL};
    if (spawn(&e->origin, oargv, log) != 0 ||
        wait_listening(&e->origin, "origin", e->origin_url, sizeof(e->origin_url)) != 0)
        return PC_EIO;
    say(e, "tracker %s, origin %s\n", e->tracker_url, e->origin_url);
    return 0;
}

static int fetch(emu *e, const char *path, size_t max, char **out, size_t *len)
{
    pc_buf b;
    long status = 0;
    char url[1200];
    const char *why = NULL;
    pc_buf_init(&b, max);
    int rc = pc_http_get_blocking(e->origin_url, path, 20, &b, &status, url, sizeof(url), &why);
    if (rc != 0 || status != 200) {
        fail("GET %s: %s", url, rc != 0 ? (why ? why : pc_strerror(rc)) : "not 200");
        pc_buf_clear(&b);
        return PC_EIO;
    }
    if (pc_buf_append(&b, "", 1) != 0) {
        pc_buf_clear(&b);
        return PC_ENOMEM;
    }
    *out = b.data;
    *len = b.len - 1;
    return 0;
}

/* Generates, uploads (tus, through the upload client) and waits for each video of the catalog. */
static int ingest(emu *e)
{
    const sim_scenario *sc = &e->sc;
    pc_rng r;
    pc_rng_init(&r, sim_catalog_seed(sc));
    int top = (int)sc->n_rungs - 1;
    for (uint32_t k = 0; k < sc->videos; k++) {
        evideo *v = &e->v[k];
        uint32_t nseg;
        v->len_s = sim_catalog_next(sc, &r, NULL, &nseg);
        if (v->len_s > EMU_VIDEO_S_MAX) {
            fail("video %u would last %.0f s; emulation generates at most %d s", k, v->len_s,
                    EMU_VIDEO_S_MAX);
            return PC_ELIMIT;
        }
        char src[PATHMAX], size[48], dur[32], tone[64];
        snprintf(src, sizeof(src), "%s/video-%u.mp4", e->dir, k);
        snprintf(size, sizeof(size), "testsrc2=size=%dx%d:rate=25", ladder[top].w, ladder[top].h);
        snprintf(dur, sizeof(dur), "%.3f", v->len_s);
        snprintf(tone, sizeof(tone), "sine=frequency=%u:sample_rate=48000", 220 + 110 * k);
        say(e, "generating video %u: %.0f s at %dx%d\n", k, v->len_s, ladder[top].w, ladder[top].h);
        /* an English subtitle track too (a cue every 6 s saying where it is), which the origin publishes as
         * WebVTT and a player shows (--keep) */
        char srt[PATHMAX];
        snprintf(srt, sizeof(srt), "%s/video-%u.srt", e->dir, k);
        pc_buf sb;
        pc_buf_init(&sb, 1u << 20);
        int sr = 0;
        for (unsigned c = 0; sr == 0 && c * 6 + 1 < v->len_s; c++)
            sr = pc_buf_printf(&sb, "%u\n00:%02u:%02u,000 --> 00:%02u:%02u,000\n%s: video %u at %u:%02u\n\n", c + 1,
                               c * 6 / 60, c * 6 % 60, (c * 6 + 4) / 60, (c * 6 + 4) % 60, sc->name, k, c * 6 / 60, c * 6 % 60);
        if (sr == 0)
            sr = pc_write_file(srt, sb.data, sb.len);
        pc_buf_clear(&sb);
        if (sr != 0) {
            fail("cannot write %s", srt);
            return PC_EIO;
        }
        /* an argument vector: DIR's path may hold a space (split on spaces, "--out '/tmp/with space'"
         * always failed here) */
        char *const ff[] = {"ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", size, "-f", "lavfi", "-i", tone, "-i", srt,
                            "-t", dur, "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-preset", "veryfast",
                            "-pix_fmt", "yuv420p", "-c:a", "aac", "-c:s", "mov_text", "-metadata:s:s:0", "language=eng",
                            src, NULL};
        /* limits that grow with the video: at about 0.8 s of this machine's time per second of a six-rung
         * 1080p ladder, the 30 minutes allowed did not fit a fixed 900 s (found by review) */
        if (run_argv(e, "ffmpeg.log", 600 + v->len_s, ff) != 0) {
            fail("ffmpeg could not generate video %u (see %s/logs/ffmpeg.log)", k, e->dir);
            return PC_EIO;
        }
        char bin[PATHMAX], log[PATHMAX], state[PATHMAX], title[96];
        snprintf(bin, sizeof(bin), "%s/../origin/peercdn-origin", e->bindir);
        snprintf(log, sizeof(log), "%s/logs/upload-%u.log", e->dir, k);
        snprintf(state, sizeof(state), "%s/upload-%u.state", e->dir, k);
        snprintf(title, sizeof(title), "%s #%u", sc->name, k);
        char *argv[] = {bin, "upload", src, "--origin", e->origin_url, "--token", e->token, "--title", title,
                        "--wait", "--no-progress", "--state", state, NULL};
        say(e, "ingesting video %u (tus upload, transcoding)\n", k);
        proc p = {0};
        if (spawn(&p, argv, log) != 0 || reap(&p, 900 + 2 * v->len_s) != 0) {
            fail("the origin did not ingest video %u (see %s)", k, log);
            return PC_EIO;
        }
        char *txt = NULL;
        size_t n = 0;
        if (pc_read_file(log, 1 << 20, &txt, &n) != 0)
            return PC_EIO;
        /* the upload client prints the id on a line of its own, before waiting */
        int found = 0;
        for (char *save = NULL, *l = strtok_r(txt, "\n", &save); l != NULL && !found; l = strtok_r(NULL, "\n", &save))
            if (strspn(l, "abcdefghijklmnopqrstuvwxyz0123456789-_") == strlen(l) && strlen(l) >= 8 &&
                strlen(l) < sizeof(v->id)) {
                snprintf(v->id, sizeof(v->id), "%s", l);
                found = 1;
            }
        free(txt);
        if (!found) {
            fail("no video id in %s", log);
            return PC_EIO;
        }
        char path[300];
        size_t len;
        snprintf(path, sizeof(path), "v/%s/p2p.json", v->id);
        if (fetch(e, path, EMU_MANIFEST_MAX, &v->json, &len) != 0)
            return PC_EIO;
        const char *why = NULL;
        if (pc_manifest_parse(v->json, len, &v->mf) != 0 || pc_peer_media_init(&v->pm, v->mf, &why) != 0) {
            fail("the manifest of video %s cannot be used: %s", v->id, why ? why : "invalid");
            return PC_EPARSE;
        }
        v->pm_ok = 1;
        if (v->pm.m.n_rungs != sc->n_rungs) {
            fail("the origin made %u renditions of video %u, the scenario has %u",
                    v->pm.m.n_rungs, k, sc->n_rungs);
            return PC_EINVAL;
        }
    }
    char *key = NULL;
    size_t n = 0;
    if (fetch(e, "api/origin-key", 4096, &key, &n) != 0)
        return PC_EIO;
    json_t *o = json_loads(key, 0, NULL);
    free(key);
    const char *b64 = json_string_value(json_object_get(o, "ed25519"));
    if (b64 == NULL || strlen(b64) >= sizeof(e->origin_key)) {
        json_decref(o);
        fail("the origin's key answer is not what docs/origin.md says");
        return PC_EPARSE;
    }
    snprintf(e->origin_key, sizeof(e->origin_key), "%s", b64);
    json_decref(o);
    return 0;
}

/* Mean bitrate of rung |q| over the catalog, audio included (what a viewer receives), kbit/s. */
static double measured_kbps(const emu *e, uint32_t q)
{
    double bytes = 0, us = 0;
    for (uint32_t k = 0; k < e->sc.videos; k++) {
        const pc_media *m = &e->v[k].pm.m;
        for (uint32_t i = 0; i < m->n_segments; i++) {
            bytes += m->rung[q].seg_size[i];
            us += m->seg_dur_us[i];
        }
    }
    return us > 0 ? bytes * 8 / us * 1000 : 0;
}

/* ---- viewers ---- */

static int plan(emu *e, uint32_t max)
{
    const sim_scenario *sc = &e->sc;
    e->nseeders = sc->seeders * sc->videos;
    if (e->nseeders > 64) {
        fail("emulation runs at most 64 seeders (seeders.per_video × catalog.videos)");
        return PC_ELIMIT;
    }
    uint32_t cap = e->nseeders + 64;
    e->w = calloc(cap, sizeof(*e->w));
    if (e->w == NULL)
        return PC_ENOMEM;
    for (uint32_t k = 0; k < sc->videos; k++)
        for (uint32_t j = 0; j < sc->seeders; j++) {
            eviewer *w = &e->w[e->nw++];
            w->seeder = 1;
            w->a.video = k;
            w->a.up_kbps = sc->seeder_up_kbps;
            w->a.down_kbps = sc->seeder_up_kbps;
        }
    sim_workload wl;
    int rc = sim_workload_init(&wl, sc, e->seed);
    uint64_t at, end = (uint64_t)(sc->duration_s * 1e6);
    while (rc == 0 && sim_workload_next_time(&wl, e->nw - e->nseeders, &at) == 0 && at <= end) {
        if (e->nw - e->nseeders >= max) {
            fail("the scenario has more than %u viewers; emulation runs at most %u real "
                            "peers (--max-viewers)",
                    max, max);
            rc = PC_ELIMIT;
            break;
        }
        if (e->nw == cap) {
            eviewer *p = realloc(e->w, 2 * cap * sizeof(*p));
            if (p == NULL) {
                rc = PC_ENOMEM;
                break;
            }
            memset(p + cap, 0, cap * sizeof(*p));
            e->w = p;
            cap *= 2;
        }
        eviewer *w = &e->w[e->nw++];
        sim_workload_viewer(&wl, at, &w->a); /* seeks are drawn, not emulated: noted below */
    }
    sim_workload_clear(&wl);
    if (rc != 0)
        return rc; /* refused: no notes about a run that will not happen */
    if (sc->seek_probability > 0)
        note(e, "seeks are not emulated (seek_probability %.2f): real peers play straight through", sc->seek_probability);
    if (sc->abrupt_leave_probability > 0)
        note(e, "abrupt leaves are not emulated: every peer leaves with a 'stopped' announce and its report");
    if (sc->cdn_capacity_mbps > 0)
        note(e, "the CDN capacity (%.0f Mbit/s) is not emulated: the origin serves as fast as the host allows",
             sc->cdn_capacity_mbps);
    if (sc->numwant != EMU_PEER_NUMWANT)
        note(e, "tracker.numwant %u is not emulated: real peers ask for %d while a link is free", sc->numwant,
             EMU_PEER_NUMWANT);
    if (sc->max_neighbours > EMU_PEER_LINKS_MAX)
        note(e, "tracker.max_neighbours %u: real peers dial at most %d links", sc->max_neighbours, EMU_PEER_LINKS_MAX);
    if (sc->engine_set)
        note(e, "the scenario's engine settings are not emulated: real peers run the engine's defaults");
    note(e, "network.cdn_latency_ms is not emulated: the origin is as far as each peer's own link");
    return rc;
}

static int start_peer(emu *e, uint32_t i)
{
    eviewer *w = &e->w[i];
    const evideo *v = &e->v[w->a.video];
    char bin[PATHMAX], log[PATHMAX], listen[64], up[32], down[32], seed_after[32], watch[32], rng[32], state[PATHMAX];
    char links[16];
    snprintf(bin, sizeof(bin), "%s/../peer/peercdn-peer", e->bindir);
    snprintf(log, sizeof(log), "%s/logs/%s-%03u.log", e->dir, w->seeder ? "seeder" : "viewer", i);
    snprintf(w->report, sizeof(w->report), "%s/reports/%s-%03u.json", e->dir, w->seeder ? "seeder" : "viewer", i);
    snprintf(listen, sizeof(listen), "%s:0", e->netns ? w->ip : "127.0.0.1");
    snprintf(up, sizeof(up), "%.0f", w->a.up_kbps > 1 ? w->a.up_kbps : 1);
    snprintf(down, sizeof(down), "%.0f", w->a.down_kbps > 1 ? w->a.down_kbps : 1);
    snprintf(seed_after, sizeof(seed_after), "%.3f", w->a.seed_after_s);
    snprintf(rng, sizeof(rng), "%" PRIu64, (uint64_t)((e->seed * 1000003ULL + i) % 9007199254740991ULL + 1));
    snprintf(state, sizeof(state), "%s/state", e->dir);
    char *argv[48];
    int n = 0;
    if (e->netns) {
        argv[n++] = "ip", argv[n++] = "netns", argv[n++] = "exec", argv[n++] = w->ns;
    }
    argv[n++] = bin;
    argv[n++] = w->seeder ? "seed" : "play";
    argv[n++] = "--origin", argv[n++] = e->origin_url;
    argv[n++] = "--video", argv[n++] = (char *)v->id;
    argv[n++] = "--listen", argv[n++] = listen;
    argv[n++] = "--origin-key", argv[n++] = e->origin_key;
    argv[n++] = "--state-dir", argv[n++] = state;
    argv[n++] = "--report", argv[n++] = w->report;
    argv[n++] = "--rng-seed", argv[n++] = rng;
    argv[n++] = "--up-kbps", argv[n++] = up;
    snprintf(links, sizeof(links), "%u", e->sc.max_neighbours < EMU_PEER_LINKS_MAX ? e->sc.max_neighbours
                                                                                   : EMU_PEER_LINKS_MAX);
    argv[n++] = "--max-links", argv[n++] = links;
    if (!e->netns) /* in a namespace the link's rate limits downloads */
        argv[n++] = "--down-kbps", argv[n++] = down;
    argv[n++] = "--no-status";
    if (!w->seeder) {
        argv[n++] = "--seed-after", argv[n++] = seed_after;
        if (w->a.watch < 1) {
            snprintf(watch, sizeof(watch), "%.3f", w->a.watch * v->len_s > 0.001 ? w->a.watch * v->len_s : 0.001);
            argv[n++] = "--watch-s", argv[n++] = watch;
        }
    }
    argv[n] = NULL;
    if (spawn(&w->p, argv, log) != 0) {
        fail("cannot start peer %u", i);
        return PC_EIO;
    }
    w->spawned = 1;
    w->spawn_s = mono() - e->t0;
    return 0;
}

static int start_seeders(emu *e)
{
    if (e->nseeders == 0)
        return 0;
    say(e, "starting %u seeder%s (they fetch every segment from the origin first)\n", e->nseeders,
        e->nseeders == 1 ? "" : "s");
    for (uint32_t i = 0; i < e->nseeders; i++)
        if (start_peer(e, i) != 0)
            return PC_EIO;
    double until = mono() + 600;
    for (uint32_t i = 0; i < e->nseeders && !g_stop; i++) {
        for (;;) {
            char *txt = NULL;
            size_t n = 0;
            int ready = pc_read_file(e->w[i].p.log, 1 << 20, &txt, &n) == 0 && strstr(txt, "seeding ") != NULL;
            free(txt);
            if (ready)
                break;
            int st;
            if (waitpid(e->w[i].p.pid, &st, WNOHANG) == e->w[i].p.pid) {
                e->w[i].p.running = 0;
                fail("seeder %u exited before it was seeding; see %s", i, e->w[i].p.log);
                return PC_EIO;
            }
            if (mono() > until || g_stop) { /* still running: cleanup() stops it with the others */
                fail("seeder %u did not start seeding in 600 s; see %s", i, e->w[i].p.log);
                return g_stop ? PC_ECANCELED : PC_ETIMEDOUT;
            }
            sleep_ms(50);
        }
    }
    return g_stop ? PC_ECANCELED : 0;
}

static json_t *load_report(const char *path)
{
    char *txt = NULL;
    size_t n = 0;
    if (pc_read_file(path, EMU_REPORT_MAX, &txt, &n) != 0)
        return NULL;
    json_t *o = json_loadb(txt, n, 0, NULL);
    free(txt);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_int_t jint(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static double share(json_int_t cdn, json_int_t p2p)
{
    return cdn + p2p > 0 ? 100.0 * (double)p2p / (double)(cdn + p2p) : 0;
}

static void on_exit_peer(emu *e, uint32_t i)
{
    eviewer *w = &e->w[i];
    w->exited = 1;
    w->exit_s = mono() - e->t0;
    w->rep = load_report(w->report);
    w->ok = w->rep != NULL && (w->p.status == 0 || w->p.status == 128 + SIGTERM);
    if (w->seeder)
        return;
    if (w->rep == NULL && w->stopped && w->p.status == 128 + SIGTERM) {
        /* stopped at the end while still starting (a peer takes its signals once it has started): a viewer
         * that never started, as the simulator counts one arriving that late, not a failure (it failed the
         * run; found by review) */
        w->ok = 1;
        say(e, "[%6.1f s] viewer %3u stopped at the end before it started\n", w->exit_s, i);
        return;
    }
    if (w->rep == NULL) {
        say(e, "[%6.1f s] viewer %3u exited (status %d) without a report; see %s\n", w->exit_s, i, w->p.status,
            w->p.log);
        return;
    }
    json_t *st = json_object_get(w->rep, "startup_ms");
    char sus[32] = "never";
    if (json_is_integer(st))
        snprintf(sus, sizeof(sus), "%" PRId64 " ms", (int64_t)json_integer_value(st));
    say(e, "[%6.1f s] viewer %3u done: start-up %s, %" PRId64 " stalls, P2P %.0f%%, sent %.1f MB\n", w->exit_s, i, sus,
        (int64_t)jint(w->rep, "stalls"), share(jint(w->rep, "bytes_cdn"), jint(w->rep, "bytes_p2p")),
        (double)jint(w->rep, "bytes_up") / 1e6);
}

static void progress(emu *e, double t, uint32_t running, uint32_t done)
{
    if (!e->tty || e->quiet)
        return;
    printf("\r\033[K[%6.1f / %.0f s] %u peers running, %u of %u viewers done", t, e->end_s, running, done,
           e->nw - e->nseeders);
    fflush(stdout);
}

/* The run: spawns viewers at their times, reaps them, ends at the scenario's duration. */
static void run_viewers(emu *e)
{
    e->t0 = mono();
    e->end_s = e->sc.duration_s;
    uint32_t next = e->nseeders, done = 0;
    double last_progress = 0;
    while (!g_stop) {
        double t = mono() - e->t0;
        /* every arrival due, up to the end itself, before the end is checked: one in the last tick (or at
         * duration_s) was never started, and the prediction had a viewer the emulation did not (found by
         * review) */
        double due = t < e->end_s ? t : e->end_s;
        while (next < e->nw && (double)e->w[next].a.at / 1e6 <= due) {
            eviewer *w = &e->w[next];
            if (start_peer(e, next) == 0)
                say(e, "[%6.1f s] viewer %3u starts: up %5.0f kbit/s, down %6.0f kbit/s%s\n", t, next, w->a.up_kbps,
                    w->a.down_kbps, w->a.watch < 1 ? ", leaves early" : "");
            next++;
        }
        if (t >= e->end_s)
            break;
        int st;
        pid_t pid;
        while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
            proc *srv = pid == e->origin.pid ? &e->origin : pid == e->tracker.pid ? &e->tracker : NULL;
            if (srv != NULL) {
                srv->running = 0;
                srv->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                note(e, "the %s exited during the run (status %d); see %s", srv == &e->origin ? "origin" : "tracker",
                     srv->status, srv->log);
                e->server_died = 1;
            }
            for (uint32_t i = 0; i < e->nw; i++)
                if (e->w[i].p.running && e->w[i].p.pid == pid) {
                    e->w[i].p.running = 0;
                    e->w[i].p.status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
                    on_exit_peer(e, i);
                    if (!e->w[i].seeder)
                        done++;
                    break;
                }
        }
        if (next == e->nw && done == e->nw - e->nseeders)
            break; /* everyone has come and gone */
        if (t - last_progress >= 0.5) {
            uint32_t running = 0;
            for (uint32_t i = 0; i < e->nw; i++)
                running += e->w[i].p.running;
            progress(e, t, running, done);
            last_progress = t;
        }
        sleep_ms(20);
    }
    e->end_s = mono() - e->t0 < e->end_s ? mono() - e->t0 : e->end_s;
    /* the scenario's end (or Ctrl-C): viewers still here stop and write their reports */
    for (uint32_t i = e->nseeders; i < e->nw; i++)
        if (e->w[i].p.running) {
            e->w[i].stopped = 1;
            kill(e->w[i].p.pid, SIGTERM);
        }
    /* each recorded as it exits (waited for one after another, a slow one made every later one look as
     * slow in the log and in its leaving time); 15 s each at most, then killed */
    double until = mono() + 15;
    for (uint32_t left = 1; left > 0;) {
        left = 0;
        for (uint32_t i = e->nseeders; i < e->nw; i++)
            if (e->w[i].p.running && !e->w[i].exited) {
                if (exited_now(&e->w[i].p))
                    on_exit_peer(e, i);
                else
                    left++;
            }
        if (left > 0 && mono() >= until) {
            for (uint32_t i = e->nseeders; i < e->nw; i++)
                if (e->w[i].p.running) {
                    reap(&e->w[i].p, 0);
                    on_exit_peer(e, i);
                }
            break;
        }
        if (left > 0)
            sleep_ms(10);
    }
}

static void tracker_stats(emu *e)
{
    pc_buf b;
    long status = 0;
    char url[1200];
    const char *why = NULL;
    pc_buf_init(&b, 16 << 20);
    if (pc_http_get_blocking(e->tracker_url, "stats", 10, &b, &status, url, sizeof(url), &why) == 0 && status == 200)
        e->stats = json_loadb(b.data, b.len, 0, NULL);
    pc_buf_clear(&b);
}

/* --keep: the origin and tracker stay, with a seeder per video so a player joining has a swarm. */
static void keep_running(emu *e)
{
    proc *seeders = calloc(e->sc.videos, sizeof(*seeders));
    char bin[PATHMAX], log[PATHMAX], listen[64], state[PATHMAX];
    snprintf(bin, sizeof(bin), "%s/../peer/peercdn-peer", e->bindir);
    snprintf(listen, sizeof(listen), "%s:0", e->host_ip);
    snprintf(state, sizeof(state), "%s/state", e->dir);
    for (uint32_t k = 0; seeders != NULL && k < e->sc.videos; k++) {
        snprintf(log, sizeof(log), "%s/logs/keep-seeder-%u.log", e->dir, k);
        char *argv[] = {bin, "seed", "--origin", e->origin_url, "--video", e->v[k].id, "--listen", listen,
                        "--origin-key", e->origin_key, "--state-dir", state, "--no-status", NULL};
        if (spawn(&seeders[k], argv, log) != 0)
            fail("cannot start a seeder for --keep");
    }
    printf("\n== still running (--keep): the origin, the tracker and a seeder per video; Ctrl-C stops them\n");
    for (uint32_t k = 0; k < e->sc.videos; k++) {
        printf("   HLS     %s/v/%s/master.m3u8   (ffplay, mpv, VLC, Safari, hls.js)\n", e->origin_url, e->v[k].id);
        printf("   DASH    %s/v/%s/manifest.mpd\n", e->origin_url, e->v[k].id);
        char peer[DIRMAX + 32], q[4 * (DIRMAX + 32) + 3];
        snprintf(peer, sizeof(peer), "%s/../peer/peercdn-peer", e->bindir);
        printf("   through the swarm, with a local HLS endpoint for your player:\n"
               "     %s play --origin %s --video %s --origin-key %s --hls-listen 127.0.0.1:8088\n"
               "     then open http://127.0.0.1:8088/v/%s/master.m3u8\n",
               shq(q, sizeof(q), peer), e->origin_url, e->v[k].id, e->origin_key, e->v[k].id);
    }
    printf("   tracker %s/stats   %s/metrics\n", e->tracker_url, e->tracker_url);
    fflush(stdout);
    while (!g_stop)
        sleep_ms(100);
    for (uint32_t k = 0; seeders != NULL && k < e->sc.videos; k++)
        stop_proc(&seeders[k], 10);
    free(seeders);
}

/* ---- results ---- */

static int rung_of(const evideo *v, const char *rend)
{
    return rend != NULL ? pc_peer_media_rung(&v->pm, rend) : -1;
}

/* The peers' reports as a simulator result: the same summary, series, plots and bound. */
static int build_result(emu *e, sim_result *r, uint8_t **gots)
{
    const sim_scenario *sc = &e->sc;
    memset(r, 0, sizeof(*r));
    r->mode = SIM_MODE_HYBRID;
    r->viewers = 0; /* viewers who never started (an interrupted run) are left out */
    r->v = calloc(e->nw + 1, sizeof(*r->v));
    sim_bound_viewer *bv = calloc(e->nw + 1, sizeof(*bv));
    const pc_media **media = calloc(sc->videos, sizeof(*media));
    uint32_t nts = (uint32_t)(e->end_s / sc->timeseries_s) + 2;
    r->ts = calloc(nts, sizeof(*r->ts));
    if (r->v == NULL || bv == NULL || media == NULL || r->ts == NULL) {
        free(bv), free(media);
        return PC_ENOMEM;
    }
    for (uint32_t k = 0; k < sc->videos; k++)
        media[k] = &e->v[k].pm.m;
    /* a rung's bitrate as the simulator counts it: the ladder of DIR/scenario.json, what the rung measured
     * (not the manifest's declared bandwidth, a peak) */
    double rung_kbps[PC_RUNGS_MAX] = {0};
    for (uint32_t q = 0; q < sc->n_rungs && q < PC_RUNGS_MAX; q++)
        rung_kbps[q] = (double)llround(measured_kbps(e, q));
    for (uint32_t i = 0; i < e->nw; i++) {
        eviewer *w = &e->w[i];
        if (!w->spawned)
            continue;
        uint32_t vi = w->result = r->viewers++;
        sim_viewer_result *v = &r->v[vi];
        const evideo *vd = &e->v[w->a.video];
        const pc_media *m = &vd->pm.m;
        size_t bb = (m->n_segments + 7) / 8;
        v->seeder = w->seeder;
        v->video = w->a.video;
        v->region = w->a.region;
        v->up_kbps = w->a.up_kbps;
        v->down_kbps = w->a.down_kbps;
        v->arrive_s = w->seeder ? 0 : w->spawn_s < e->end_s ? w->spawn_s : e->end_s; /* one due at the very end */
        v->leave_s = w->exited ? w->exit_s : e->end_s;
        if (v->leave_s > e->end_s)
            v->leave_s = e->end_s;
        for (uint32_t j = e->nseeders; j < e->nw; j++)
            if (j != i && e->w[j].spawned && e->w[j].a.video == w->a.video && e->w[j].spawn_s <= w->spawn_s &&
                (!e->w[j].exited || e->w[j].exit_s > w->spawn_s))
                v->swarm++;
        gots[i] = calloc(m->n_rungs, bb);
        if (gots[i] == NULL) {
            free(bv), free(media);
            return PC_ENOMEM;
        }
        json_t *rep = w->rep;
        if (rep != NULL && !w->seeder) {
            json_t *su = json_object_get(rep, "startup_ms");
            v->started = json_is_integer(su);
            v->startup_ms = (double)json_integer_value(su);
            v->stall_ms = (double)jint(rep, "stall_ms");
            v->played_ms = (double)jint(rep, "played_ms");
            v->stalls = (uint32_t)jint(rep, "stalls");
            v->switches = (uint32_t)jint(rep, "rung_switches");
            v->bytes_cdn = (uint64_t)jint(rep, "bytes_cdn");
            v->bytes_p2p = (uint64_t)jint(rep, "bytes_p2p");
            r->bytes_cdn += v->bytes_cdn;
            r->bytes_p2p += v->bytes_p2p;
        }
        if (rep != NULL) {
            v->bytes_up = (uint64_t)jint(rep, "bytes_up");
            r->bytes_up += v->bytes_up;
        }
        double wsum = 0, bsum = 0;
        size_t idx;
        json_t *s;
        json_array_foreach(json_object_get(rep, "segments"), idx, s) {
            int q = rung_of(vd, json_string_value(json_object_get(s, "rendition")));
            json_int_t si = jint(s, "index");
            if (q < 0 || si < 0 || (uint64_t)si >= m->n_segments)
                continue;
            gots[i][(size_t)q * bb + (size_t)si / 8] |= (uint8_t)(1u << (si % 8));
            double start_ms = 0;
            for (json_int_t x = 0; x < si; x++)
                start_ms += m->seg_dur_us[x] / 1000.0;
            if (!w->seeder && start_ms < v->played_ms) {
                wsum += m->seg_dur_us[si];
                bsum += (double)m->seg_dur_us[si] * rung_kbps[q];
            }
        }
        v->bitrate_kbps = wsum > 0 ? bsum / wsum : 0;
        /* it receives until its playback ended (then it seeds), or until it left */
        json_t *ended = json_object_get(rep, "ended_at_ms");
        double watched_s = json_is_integer(ended) ? w->spawn_s + (double)json_integer_value(ended) / 1000 : v->leave_s;
        bv[vi] = (sim_bound_viewer){.video = w->a.video,
                                   .arrive = (uint64_t)(v->arrive_s * 1e6),
                                   .left = (uint64_t)(v->leave_s * 1e6),
                                   .watched = watched_s > v->arrive_s ? (uint64_t)(watched_s * 1e6) : (uint64_t)(v->arrive_s * 1e6),
                                   .up = w->a.up_kbps * 1000 / 8,
                                   .seeder = w->seeder,
                                   .bytes = (double)(v->bytes_cdn + v->bytes_p2p),
                                   .got = w->seeder ? NULL : gots[i]};
    }
    sim_bound b;
    int rc = sim_bound_compute(media, sc->videos, bv, r->viewers, (uint64_t)(e->end_s * 1e6), &b);
    free(bv), free(media);
    if (rc != 0)
        return rc;
    r->offload_bound = b.offload_bound;
    r->cdn_needed_bytes = b.cdn_needed_bytes;
    r->usable_upload_bytes = b.usable_upload_bytes;
    r->demand_bytes = b.demand_bytes;
    for (uint32_t i = e->nseeders; i < e->nw; i++)
        r->events += json_array_size(json_object_get(e->w[i].rep, "segments"));
    /* the time series from when each kept segment arrived (wasted copies are not in it) */
    for (uint32_t k = 0; k < nts; k++) {
        double t = k * sc->timeseries_s;
        if (t > e->end_s)
            t = e->end_s;
        sim_sample *x = &r->ts[r->nts++];
        x->t_s = t;
        for (uint32_t i = e->nseeders; i < e->nw; i++) {
            const eviewer *w = &e->w[i];
            if (!w->spawned || w->spawn_s > t)
                continue;
            /* the last row counts everyone's stalls, as summary.json does: those stopped at the end exit a
             * moment after it */
            double left = w->exited && w->exit_s < e->end_s ? w->exit_s : e->end_s;
            json_t *ended = json_object_get(w->rep, "ended_at_ms");
            double ended_s = json_is_integer(ended) ? w->spawn_s + (double)json_integer_value(ended) / 1000 : left;
            if (t < left) {
                if (t < ended_s)
                    x->watching++;
                else
                    x->seeding++;
            } else {
                x->stalls += (uint32_t)jint(w->rep, "stalls");
            }
            size_t idx;
            json_t *s;
            json_array_foreach(json_object_get(w->rep, "segments"), idx, s) {
                if (w->spawn_s + (double)jint(s, "at_ms") / 1000 <= t) {
                    x->bytes_cdn += (uint64_t)jint(s, "bytes_cdn");
                    x->bytes_p2p += (uint64_t)jint(s, "bytes_p2p");
                }
            }
        }
        if (t >= e->end_s)
            break;
    }
    r->peak_rss_kib = sim_peak_rss_kib();
    r->kind = "emulation"; /* run.json: events = segments the viewers kept; wall_s is set by the caller */
    return 0;
}

static void print_table(const emu *e, const sim_result *r)
{
    printf("\n%-7s %9s %10s %12s %7s %8s %9s %9s\n", "viewer", "up kbit/s", "down kbit/s", "start-up ms", "stalls",
           "P2P", "kbit/s", "sent MB");
    for (uint32_t i = e->nseeders; i < e->nw; i++) {
        const eviewer *w = &e->w[i];
        if (!w->spawned)
            continue;
        if (w->rep == NULL) {
            printf("%-7u %9.0f %10.0f %12s\n", i, w->a.up_kbps, w->a.down_kbps, "no report");
            continue;
        }
        json_t *su = json_object_get(w->rep, "startup_ms");
        char sus[32];
        if (json_is_integer(su))
            snprintf(sus, sizeof(sus), "%" PRId64, (int64_t)json_integer_value(su));
        else
            snprintf(sus, sizeof(sus), "never");
        json_int_t cdn = jint(w->rep, "bytes_cdn"), p2p = jint(w->rep, "bytes_p2p");
        printf("%-7u %9.0f %10.0f %12s %7" PRId64 " %7.1f%% %9.0f %9.1f\n", i, w->a.up_kbps, w->a.down_kbps, sus,
               (int64_t)jint(w->rep, "stalls"), share(cdn, p2p), r->v[w->result].bitrate_kbps, (double)jint(w->rep, "bytes_up") / 1e6);
    }
}

/* DIR/scenario.json: the scenario as emulated — its ladder replaced by the rungs' measured bitrates
 * (audio included), its seed by the run's — so `peercdn-sim run` predicts this very run. */
static int write_effective(emu *e)
{
    json_error_t je;
    json_t *o = json_loadb(e->sc_text, e->sc_len, 0, &je);
    if (o == NULL) { /* parsed once already at the start */
        pc_cli_error("the scenario cannot be parsed again: %s", je.text);
        return PC_EPARSE;
    }
    json_t *media = json_object_get(o, "media");
    if (media == NULL) { /* the default ladder: the measured one goes in all the same (found by review) */
        media = json_object();
        json_object_set_new(o, "media", media);
    }
    json_t *lad = json_array();
    for (uint32_t q = 0; q < e->sc.n_rungs; q++)
        json_array_append_new(lad, json_integer((json_int_t)llround(measured_kbps(e, q))));
    if (json_is_object(media))
        json_object_set_new(media, "ladder_kbps", lad);
    else
        json_decref(lad);
    json_object_set_new(o, "seed", json_integer((json_int_t)e->seed));
    /* what was not emulated (the notes) is taken out, so that `run` predicts this run: the workload's draws
     * do not depend on these settings, so every viewer stays the same one */
    json_t *v = json_object_get(o, "viewers"), *net = json_object_get(o, "network"), *tr = json_object_get(o, "tracker");
    if (json_is_object(v)) {
        json_object_del(v, "seek_probability");
        json_object_del(v, "abrupt_leave_probability");
    }
    if (net == NULL) {
        net = json_object();
        json_object_set_new(o, "network", net);
    }
    if (json_is_object(net)) {
        json_object_del(net, "cdn_capacity_mbps");
        if (e->sc.n_regions > 1 && e->netns && e->netem) { /* the latencies as emulated: each pair the mean of its regions' own */
            json_t *lat = json_object();
            for (uint32_t a = 0; a < e->sc.n_regions; a++)
                for (uint32_t b = a; b < e->sc.n_regions; b++) {
                    char key[40];
                    snprintf(key, sizeof(key), "%s-%s", e->sc.region_name[a], e->sc.region_name[b]);
                    json_object_set_new(lat, key, json_real(emu_latency_ms(&e->sc, a, b)));
                }
            json_object_set_new(net, "latency_ms", lat);
        }
    }
    if (tr == NULL) {
        tr = json_object();
        json_object_set_new(o, "tracker", tr);
    }
    if (json_is_object(tr)) {
        json_object_set_new(tr, "numwant", json_integer(EMU_PEER_NUMWANT));
        if (e->sc.max_neighbours > EMU_PEER_LINKS_MAX)
            json_object_set_new(tr, "max_neighbours", json_integer(EMU_PEER_LINKS_MAX));
    }
    json_object_del(o, "engine");
    char err[PATHMAX + 256];
    int rc = sim_write_json(e->out, "scenario.json", o, JSON_INDENT(2) | JSON_PRESERVE_ORDER, err, sizeof(err));
    if (rc != 0)
        pc_cli_error("%s", err);
    json_decref(o);
    return rc;
}

static int write_emulation_json(emu *e, const sim_result *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "network", json_string(e->netns ? "netns" : "loopback"));
    json_object_set_new(o, "latency_emulated", json_boolean(e->netns && e->netem));
    json_object_set_new(o, "notes", json_incref(e->notes));
    json_t *vids = json_array();
    for (uint32_t k = 0; k < e->sc.videos; k++) {
        json_t *v = json_object();
        json_object_set_new(v, "id", json_string(e->v[k].id));
        json_object_set_new(v, "duration_s", json_real(e->v[k].len_s));
        json_array_append_new(vids, v);
    }
    json_object_set_new(o, "videos", vids);
    json_t *lad = json_array();
    for (uint32_t q = 0; q < e->sc.n_rungs; q++)
        json_array_append_new(lad, json_real(measured_kbps(e, q)));
    json_object_set_new(o, "measured_ladder_kbps", lad);
    uint64_t seeder_cdn = 0;
    uint32_t failed = 0;
    for (uint32_t i = 0; i < e->nw; i++) {
        if (e->w[i].seeder && e->w[i].rep != NULL)
            seeder_cdn += (uint64_t)jint(e->w[i].rep, "bytes_cdn");
        failed += e->w[i].spawned && !e->w[i].ok;
    }
    json_object_set_new(o, "seeders_bytes_cdn", json_integer((json_int_t)seeder_cdn));
    json_object_set_new(o, "peers_failed", json_integer(failed));
    json_object_set_new(o, "viewers_bytes_cdn", json_integer((json_int_t)r->bytes_cdn));
    json_object_set_new(o, "viewers_bytes_p2p", json_integer((json_int_t)r->bytes_p2p));
    if (e->stats != NULL)
        json_object_set(o, "tracker_stats", e->stats);
    char err[PATHMAX + 256];
    int rc = sim_write_json(e->out, "emulation.json", o, JSON_INDENT(2) | JSON_PRESERVE_ORDER, err, sizeof(err));
    if (rc != 0)
        pc_cli_error("%s", err);
    json_decref(o);
    return rc;
}

/* Removes the files an earlier run left in DIR/emu/|sub| whose names end in one of |ends| (logs are
 * appended to, and a report or a log must not be taken for this run's). */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)f;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT ? -1 : 0;
}

/* What an earlier run into this DIR left beyond its results and logs: a `run --compare`'s compare.json,
 * and the tracker's database and the origin's data directory (reused, the tracker's totals added up over
 * the runs, emulation.json's tracker_stats twice the reports', and the origin's catalog grew). */
static int clear_earlier_run(emu *e, const char *out, char *err, size_t errlen)
{
    char path[PATHMAX];
    /* and a `run --compare`'s compare.json, as `run` removes it: taken for this run's otherwise */
    snprintf(path, sizeof(path), "%s/compare.json", out);
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove %s, left from an earlier run: %s", path, strerror(errno));
        return PC_EIO;
    }
    static const char *const db[] = {"tracker.db", "tracker.db-wal", "tracker.db-shm"};
    for (size_t k = 0; k < sizeof(db) / sizeof(db[0]); k++) {
        snprintf(path, sizeof(path), "%s/%s", e->dir, db[k]);
        if (unlink(path) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "cannot remove %s, left from an earlier run: %s", path, strerror(errno));
            return PC_EIO;
        }
    }
    snprintf(path, sizeof(path), "%s/origin", e->dir);
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove %s, left from an earlier run: %s", path, strerror(errno));
        return PC_EIO;
    }
    return 0;
}

static int clear_earlier(emu *e, const char *sub, const char *const *ends, char *err, size_t errlen)
{
    char path[PATHMAX];
    snprintf(path, sizeof(path), "%s/%s", e->dir, sub);
    DIR *d = opendir(path);
    if (d == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return PC_EIO;
    }
    int rc = 0;
    for (struct dirent *de = readdir(d); de != NULL && rc == 0; de = readdir(d)) {
        size_t n = strlen(de->d_name), k = 0;
        while (ends[k] != NULL && !(n > strlen(ends[k]) && strcmp(de->d_name + n - strlen(ends[k]), ends[k]) == 0))
            k++;
        if (ends[k] == NULL)
            continue;
        snprintf(path, sizeof(path), "%s/%s/%s", e->dir, sub, de->d_name);
        if (unlink(path) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "cannot remove %s, left from an earlier run: %s", path, strerror(errno));
            rc = PC_EIO;
        }
    }
    closedir(d);
    return rc;
}

static void cleanup(emu *e)
{
    for (uint32_t i = 0; i < e->nw; i++)
        stop_proc(&e->w[i].p, 10);
    stop_proc(&e->origin, 10);
    stop_proc(&e->tracker, 10);
    net_teardown(e);
    for (uint32_t i = 0; i < e->nw; i++)
        json_decref(e->w[i].rep);
    free(e->w);
    if (e->v != NULL)
        for (uint32_t k = 0; k < e->sc.videos; k++) {
            if (e->v[k].pm_ok)
                pc_peer_media_clear(&e->v[k].pm);
            pc_manifest_free(e->v[k].mf);
            free(e->v[k].json);
        }
    free(e->v);
    json_decref(e->notes);
    json_decref(e->stats);
    sim_scenario_clear(&e->sc);
    free(e->sc_text);
}

static const char usage_text[] =
    "usage: peercdn-sim emulate SCENARIO --out DIR [--seed N] [--network auto|netns|loopback] [--keep]\n"
    "                           [--max-viewers N] [--quiet]\n"
    "\n"
    "Runs SCENARIO with real processes: the tracker, the origin (which ingests generated videos) and one\n"
    "peercdn-peer per viewer, started when the simulator would start them. Writes the same summary.json,\n"
    "timeseries.csv and plots as `run`, plus DIR/emulation.json and DIR/scenario.json (the scenario with\n"
    "the ladder the origin produced, for `peercdn-sim run` to predict this run).\n"
    "  --network M      auto (default): a network namespace per peer when root, else loopback;\n"
    "                   netns: fail without namespaces; loopback: the peers' own rate caps\n"
    "  --keep           leave the origin, tracker and seeders running and print URLs to play\n"
    "  --max-viewers N  refuse scenarios with more viewers (default 200, at most 400)\n"
    "  --quiet          no progress\n";

const char *sim_emulate_usage(void)
{
    return usage_text;
}

int sim_emulate_main(int argc, char **argv, const char *self)
{
    const char *out = NULL, *seed_s = NULL, *network = "auto";
    int keep = 0, quiet = 0;
    uint32_t max = 200;
    enum { O_OUT = PC_CLI_LONG_FIRST, O_SEED, O_NET, O_KEEP, O_MAX, O_QUIET, O_HELP };
    static const struct option opts[] = {
        {"out", required_argument, NULL, O_OUT},       {"seed", required_argument, NULL, O_SEED},
        {"network", required_argument, NULL, O_NET},   {"keep", no_argument, NULL, O_KEEP},
        {"max-viewers", required_argument, NULL, O_MAX}, {"quiet", no_argument, NULL, O_QUIET},
        {"help", no_argument, NULL, O_HELP},           {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case O_OUT: out = optarg; break;
        case O_SEED: seed_s = optarg; break;
        case O_NET: network = optarg; break;
        case O_KEEP: keep = 1; break;
        case O_MAX: max = (uint32_t)pc_cli_int(optarg, "--max-viewers", 1, EMU_VIEWERS_MAX); break;
        case O_QUIET: quiet = 1; break;
        case O_HELP: fputs(usage_text, stdout); return 0;
        default: pc_cli_bad_option(argv);
        }
    }
    if (optind != argc - 1)
        pc_cli_usage("emulate takes one SCENARIO file");
    if (out == NULL)
        pc_cli_usage("emulate needs --out DIR");
    if (strlen(out) > DIRMAX - 64)
        pc_cli_usage("--out: the path is too long");
    if (strcmp(network, "auto") != 0 && strcmp(network, "netns") != 0 && strcmp(network, "loopback") != 0)
        pc_cli_usage("--network takes auto, netns or loopback");
    static emu e; /* one per process; the signal handler only sets g_stop */
    memset(&e, 0, sizeof(e));
    e.out = out;
    e.quiet = quiet;
    e.keep = keep;
    e.tty = isatty(1);
    char err[PATHMAX + 256];
    if (sim_scenario_load(argv[optind], &e.sc, &e.sc_text, &e.sc_len, err, sizeof(err)) != 0) {
        pc_cli_error("%s", err);
        return 1;
    }
    e.seed = e.sc.seed;
    if (seed_s != NULL && sim_seed_parse(seed_s, &e.seed) != 0) {
        sim_scenario_clear(&e.sc);
        free(e.sc_text);
        pc_cli_usage("--seed takes an integer from 0 to 2^53 - 1");
    }
    /* the catalog comes from the run's seed, as in `run` (workload.h), and scenario.json says that seed */
    e.sc.seed = e.seed;
    const char *bad = NULL;
    if (e.sc.mode != SIM_MODE_HYBRID)
        bad = "emulation runs the hybrid mode only (the scenario's mode is not hybrid)";
    else if (e.sc.n_rungs > 6)
        bad = "emulation produces at most 6 rungs (Apple's ladder)";
    else if (e.sc.segment_s != floor(e.sc.segment_s) || (int)e.sc.segment_s % 2 != 0 || e.sc.segment_s > 20)
        bad = "emulation needs media.segment_s to be an even number of seconds up to 20 (the origin's segments)";
    else if (e.sc.announce_interval_s > 900)
        bad = "emulation needs tracker.interval_s of at most 900 (the tracker's tickets last 3600 s, four intervals)";
    else if (e.sc.videos > EMU_VIDEOS_MAX)
        bad = "emulation generates at most 8 videos (catalog.videos)";
    char toolong[160];
    if (bad == NULL) {
        /* the lengths ingest() will draw, drawn here first: a video too long to generate is refused before the
         * network, the tracker and the origin are set up */
        pc_rng r;
        pc_rng_init(&r, sim_catalog_seed(&e.sc));
        for (uint32_t k = 0; bad == NULL && k < e.sc.videos; k++) {
            uint32_t nseg;
            double len = sim_catalog_next(&e.sc, &r, NULL, &nseg);
            if (len > EMU_VIDEO_S_MAX) {
                snprintf(toolong, sizeof(toolong), "video %u would last %.0f s; emulation generates at most %d s", k,
                         len, EMU_VIDEO_S_MAX);
                bad = toolong;
            }
        }
    }
    if (bad != NULL) {
        pc_cli_error("%s", bad);
        sim_scenario_clear(&e.sc);
        free(e.sc_text);
        return 1;
    }
    /* the binaries beside ours: build/sim/../{origin,tracker,peer} */
    char exe[PATHMAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0 || n >= DIRMAX) {
        snprintf(exe, DIRMAX, "%s", self);
        n = (ssize_t)strlen(exe);
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    snprintf(e.bindir, sizeof(e.bindir), "%.*s", slash ? (int)(slash - exe) : 1, slash ? exe : ".");
    e.notes = json_array();
    e.v = calloc(e.sc.videos, sizeof(*e.v));
    if (e.notes == NULL || e.v == NULL) {
        pc_cli_error("out of memory");
        cleanup(&e);
        return 1;
    }
    pc_random_id(e.token, 24);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    double wall0 = mono();
    int rc = plan(&e, max);
    if (rc != 0) {
        cleanup(&e);
        return 1;
    }
    snprintf(e.dir, sizeof(e.dir), "%s/emu", out);
    char sub[PATHMAX];
    snprintf(sub, sizeof(sub), "%s/logs", e.dir);
    rc = pc_mkdirs(sub);
    snprintf(sub, sizeof(sub), "%s/reports", e.dir);
    rc = rc ? rc : pc_mkdirs(sub);
    snprintf(sub, sizeof(sub), "%s/state", e.dir);
    rc = rc ? rc : pc_mkdirs(sub);
    if (rc != 0) {
        pc_cli_error("cannot create %s: %s", e.dir, sim_mkdirs_reason(rc, errno));
        cleanup(&e);
        return 1;
    }
    /* a fresh run: the result, logs and reports of an earlier one must not be mistaken for this one's (a
     * server's log is searched for the address it listens on) */
    static const char *const logs[] = {".log", ".txt", NULL}; /* and addrs.txt, the host's addresses */
    static const char *const reports[] = {".json", NULL};
    if (sim_forget_result(out, err, sizeof(err)) != 0 || clear_earlier(&e, "logs", logs, err, sizeof(err)) != 0 ||
        clear_earlier(&e, "reports", reports, err, sizeof(err)) != 0 || clear_earlier_run(&e, out, err, sizeof(err)) != 0) {
        pc_cli_error("%s", err);
        cleanup(&e);
        return 1;
    }
    rc = rc ? rc : net_setup(&e, network);
    if (rc == 0 && e.netns && e.netem)
        note_cross_region(&e);
    for (uint32_t i = 0; rc == 0 && e.netns && i < e.nw && !g_stop; i++) /* latency within the viewer's region */
        rc = net_add(&e, i, e.w[i].a.up_kbps, e.w[i].a.down_kbps, e.sc.latency_ms[e.w[i].a.region][e.w[i].a.region]);
    if (rc == 0)
        say(&e, "%u viewers and %u seeders planned over %.0f s (seed %" PRIu64 ")\n", e.nw - e.nseeders, e.nseeders,
            e.sc.duration_s, e.seed);
    rc = rc ? rc : start_servers(&e);
    rc = rc ? rc : ingest(&e);
    for (uint32_t q = 0; rc == 0 && q < e.sc.n_rungs; q++)
        if (fabs(measured_kbps(&e, q) - e.sc.ladder_kbps[q]) > 0.25 * e.sc.ladder_kbps[q])
            note(&e, "rung %u measures %.0f kbit/s with audio, the scenario says %u; DIR/scenario.json has the measured "
                     "ladder",
                 q, measured_kbps(&e, q), e.sc.ladder_kbps[q]);
    rc = rc ? rc : start_seeders(&e);
    if (rc == 0 && g_stop)
        rc = PC_ECANCELED; /* before any viewer played: nothing to report */
    if (rc == 0) {
        say(&e, "playing: %u viewers arrive over the next %.0f s\n", e.nw - e.nseeders,
            e.nw > e.nseeders ? (double)e.w[e.nw - 1].a.at / 1e6 : 0);
        run_viewers(&e);
        if (e.tty && !e.quiet)
            printf("\n");
    }
    int status = g_stop ? 128 + g_stop : rc != 0 ? 1 : 0;
    if (rc == 0) {
        tracker_stats(&e);
        int interrupted = g_stop;
        for (uint32_t i = 0; i < e.nseeders; i++) {
            stop_proc(&e.w[i].p, 10);
            if (e.w[i].spawned && !e.w[i].exited)
                on_exit_peer(&e, i);
        }
        sim_result r;
        uint8_t **gots = calloc(e.nw + 1, sizeof(*gots));
        rc = gots == NULL ? PC_ENOMEM : build_result(&e, &r, gots);
        if (rc == 0)
            r.interrupted = interrupted != 0;
        if (rc == 0) /* summary.json and run.json, which compare reads, come last */
            rc = write_effective(&e);
        if (rc == 0)
            rc = write_emulation_json(&e, &r);
        if (rc == 0) {
            r.wall_s = mono() - wall0;
            rc = sim_write_outputs(out, &e.sc, e.seed, &r, err, sizeof(err));
            if (rc != 0)
                pc_cli_error("%s", err);
        }
        if (rc == 0 && !quiet) {
            if (interrupted) /* said first: the figures below look like a whole run's (found by review) */
                printf("\nINTERRUPTED (signal %d): %u of the scenario's %u viewers started; the figures are those of "
                       "an incomplete run\n", interrupted, r.viewers, e.nw > e.nseeders ? e.nw - e.nseeders : 0);
            print_table(&e, &r);
            json_t *s = sim_summary(&e.sc, e.seed, &r);
            printf("\n");
            sim_print_header();
            sim_print_row("emulation", s);
            double total = (double)(r.bytes_cdn + r.bytes_p2p);
            printf("\nCDN offload %.1f%% (bound %.1f%%): the CDN sent %.1f MB instead of %.1f MB; %.1f MB saved, "
                   "$%.6f at $%.2f/GB ($%.0f per million such views)\n",
                   total > 0 ? 100.0 * (double)r.bytes_p2p / total : 0, 100 * r.offload_bound,
                   (double)r.bytes_cdn / 1e6, total / 1e6, (double)r.bytes_p2p / 1e6,
                   (double)r.bytes_p2p / 1e9 * e.sc.cost_per_gb, e.sc.cost_per_gb,
                   e.nw > e.nseeders
                       ? (double)r.bytes_p2p / 1e9 * e.sc.cost_per_gb / (e.nw - e.nseeders) * 1e6
                       : 0);
            char sim[DIRMAX + 32], scen[DIRMAX + 32], simout[DIRMAX + 32];
            static char q1[4 * sizeof(sim) + 3], q2[4 * sizeof(sim) + 3], q3[4 * sizeof(sim) + 3], q4[4 * sizeof(sim) + 3];
            snprintf(sim, sizeof(sim), "%s/peercdn-sim", e.bindir);
            snprintf(scen, sizeof(scen), "%s/scenario.json", out);
            snprintf(simout, sizeof(simout), "%s/sim", out);
            const char *qsim = shq(q1, sizeof(q1), sim), *qscen = shq(q2, sizeof(q2), scen),
                       *qsimout = shq(q3, sizeof(q3), simout), *qout = shq(q4, sizeof(q4), out);
            if (interrupted) /* a prediction of the whole scenario compares with nothing here */
                printf("outputs in %s (summary.json, timeseries.csv, viewers.csv, plots; run.json says "
                       "\"interrupted\")\n", out);
            else
                printf("outputs in %s (summary.json, timeseries.csv, viewers.csv, plots); predict it with:\n"
                       "  %s run %s --out %s && %s compare %s %s\n",
                       out, qsim, qscen, qsimout, qsim, qsimout, qout);
            json_decref(s);
        }
        if (rc == 0 && keep && !g_stop)
            keep_running(&e);
        uint32_t failed = 0;
        for (uint32_t i = 0; i < e.nw; i++)
            failed += e.w[i].spawned && !e.w[i].ok;
        if (rc != 0) {
            status = 1;
        } else if (e.server_died) {
            pc_cli_error("a server exited during the run (see %s/logs)", e.dir);
            status = 1;
        } else if (failed > 0) {
            pc_cli_error("%u peer%s failed or left no report (see %s/logs)", failed,
                    failed == 1 ? "" : "s", e.dir);
            status = 1;
        }
        if (interrupted)
            status = 128 + interrupted;
        if (gots != NULL)
            for (uint32_t i = 0; i < e.nw; i++)
                free(gots[i]);
        free(gots);
        if (gots != NULL)
            sim_result_clear(&r);
    }
    cleanup(&e);
    return status;
}
