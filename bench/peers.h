/* SPDX-License-Identifier: MIT */
/*
 * peers.h - what the side-by-side benchmarks share (bench/README, "Peer
 * benchmarks"): CPU pinning, memory readings, running one side in a forked
 * child, and the row that puts libstage beside one alternative.
 *
 * The alternatives are plain pthreads, always, and libuv and GLib when
 * configure found their development packages (BENCH_HAVE_LIBUV,
 * BENCH_HAVE_GLIB in config.h).  They are only ever linked into these
 * benchmark programs, never into libstage.
 *
 * Include after bench.h (with BENCH_CUSTOM_ROWS defined).
 */
#ifndef BENCH_PEERS_H
#define BENCH_PEERS_H

#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- Placement ----------------------------------------------------------- */

/* The two CPUs used: the first two the process may run on. */
static int cpu_a = -1, cpu_b = -1;
static cpu_set_t all_cpus;

static inline void pin_init(void)
{
    CPU_ZERO(&all_cpus);
    if (sched_getaffinity(0, sizeof all_cpus, &all_cpus) != 0)
        return;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &all_cpus))
            continue;
        if (cpu_a < 0)
            cpu_a = c;
        else if (cpu_b < 0)
            cpu_b = c;
    }
}

/* Pin the calling thread (and the threads it creates from now on) to cpu;
 * -1: back to every CPU the process started with. */
static inline void pin_self(int cpu)
{
    cpu_set_t s;
    if (cpu < 0) {
        s = all_cpus;
    } else {
        CPU_ZERO(&s);
        CPU_SET(cpu, &s);
    }
    sched_setaffinity(0, sizeof s, &s);
}

/* Placements of a two-thread measurement: both on one CPU (what
 * `taskset -c 0` does) or each on its own CPU. */
enum { ONE_CPU, TWO_CPUS, NPLACE };
static const char *const place_name[NPLACE] = {"1 CPU", "2 CPUs"};

/* Where the main side and the peer side go for a placement. */
static inline int place_main(int place) { (void)place; return cpu_a; }
static inline int place_peer(int place)
{
    return place == ONE_CPU || cpu_b < 0 ? cpu_a : cpu_b;
}

/* ---- Memory ---------------------------------------------------------------- */

/* A field of /proc/self/status in bytes ("VmRSS", "VmHWM"), or -1. */
static inline long status_bytes(const char *field)
{
    char line[256];
    long kb = -1;
    size_t len = strlen(field);
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, len) && line[len] == ':') {
            kb = strtol(line + len + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* ---- One side in a forked child ---------------------------------------------- */

/* What a side measured: up to 4 figures. */
struct figures {
    double v[4];
};

/* Run fn in a forked child (a fresh process: its own peak RSS, no state
 * left over from the other sides) and return what it reported.  A child
 * that fails exits non-zero: the benchmark stops. */
static inline struct figures in_child(struct figures (*fn)(long), long n)
{
    int p[2];
    struct figures out;
    memset(&out, 0, sizeof out);
    fflush(NULL);
    CHECK(pipe(p) == 0 ? 0 : errno);
    pid_t pid = fork();
    CHECK(pid < 0 ? errno : 0);
    if (pid == 0) {
        close(p[0]);
        struct figures r = fn(n);
        ssize_t w = write(p[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 1);
    }
    close(p[1]);
    ssize_t got = read(p[0], &out, sizeof out);
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    if (got != (ssize_t)sizeof out || !WIFEXITED(st) || WEXITSTATUS(st)) {
        fprintf(stderr, "%s: a measurement's child failed\n", prog);
        exit(1);
    }
    return out;
}

/* ---- The table ------------------------------------------------------------- */

static inline void peers_header(const char *title, int lower_is_better)
{
    char la[64];
    loadavg(la, sizeof la);
    printf("%s (SCALE %g, load average %s)\n", title, scale, la);
    printf("ratio = libstage / alternative, %s\n\n",
           lower_is_better ? "both costs: below 1, libstage is cheaper"
                           : "both rates: above 1, libstage is faster");
    print_columns();
}

/* One row: libstage's figure beside one alternative's (already in the
 * unit shown), with the ratio lib / alternative and a target note. */
static inline void peer_row(const char *id, const char *what,
                            const char *unit, double lib, double alt,
                            const char *altwhat)
{
    print_row_ratio(id, what, unit, lib, alt,
                    lib >= 0 && alt > 0 ? lib / alt : -1, -1, -1, altwhat);
}

#endif /* BENCH_PEERS_H */
