/* SPDX-License-Identifier: MIT */
/*
 * bench.h - the scaffolding the benchmarks share: error checks, the scale
 * argument, iteration counts, context-switch counting, the load average,
 * and the table's header and rows.  See bench/README.
 *
 * Before including it, a program defines BENCH_PROG (its name, e.g.
 * "bench/core") and may define BENCH_WHAT_W and BENCH_VAL_W (the widths of
 * the measurement and value columns; default 40 and 10).  Unless it defines
 * BENCH_CUSTOM_ROWS, it also gets the fixed-count rows: bench_fn (n units
 * of work, returns ns per unit), SHOW_RATE / SHOW_US, print_header() and
 * row().
 */
#ifndef BENCH_BENCH_H
#define BENCH_BENCH_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#ifndef BENCH_PROG
#error "define BENCH_PROG before including bench/bench.h"
#endif
#ifndef BENCH_WHAT_W
#define BENCH_WHAT_W 40
#endif
#ifndef BENCH_VAL_W
#define BENCH_VAL_W 10
#endif

static const char *const prog = BENCH_PROG;

#define REPS 3

/* Abort on any unexpected error: a benchmark that half-works lies. */
#define CHECK(call)                                                           \
    do {                                                                      \
        int check_err_ = (call);                                              \
        if (check_err_ != 0) {                                                \
            fprintf(stderr, "%s: %s:%d: %s: %s\n", prog, __FILE__, __LINE__,  \
                    #call, strerror(check_err_));                             \
            exit(1);                                                          \
        }                                                                     \
    } while (0)

#define CHECK_PTR(p)                                                          \
    do {                                                                      \
        if ((p) == NULL) {                                                    \
            fprintf(stderr, "%s: %s:%d: %s: %s\n", prog, __FILE__, __LINE__,  \
                    #p, strerror(errno));                                     \
            exit(1);                                                          \
        }                                                                     \
    } while (0)

static double scale = 1.0;

/* SCALE from argv[1] or $BENCH_SCALE; exits 2 with a usage line if bad. */
static inline void parse_scale(int argc, char **argv)
{
    const char *arg = argc > 1 ? argv[1] : getenv("BENCH_SCALE");
    if (arg && *arg) {
        char *end;
        scale = strtod(arg, &end);
        if (*end || !(scale > 0) || scale > 1000) {
            fprintf(stderr, "usage: %s [SCALE]   (SCALE > 0, default 1; "
                            "0.1 for a quick run)\n", argv[0]);
            exit(2);
        }
    }
}

/* An iteration count: base * scale, at least `min`. */
static inline long iters(long base, long min)
{
    double n = (double)base * scale;
    return n < (double)min ? min : (long)n;
}

static inline void loadavg(char *buf, size_t len)
{
    snprintf(buf, len, "?");
    FILE *f = fopen("/proc/loadavg", "re");
    if (!f)
        return;
    double a, b, c;
    if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
        snprintf(buf, len, "%.2f %.2f %.2f", a, b, c);
    fclose(f);
}

/* Context switches (voluntary + involuntary) of the whole process so far,
 * threads that have exited included. */
static inline long csw(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return ru.ru_nvcsw + ru.ru_nivcsw;
}

/* ---- The table ---------------------------------------------------------- */

static inline void print_value(double v)
{
    if (v < 0)
        printf(" %*s", BENCH_VAL_W, "-");
    else if (v >= 1000)
        printf(" %*.0f", BENCH_VAL_W, v);
    else if (v >= 100)
        printf(" %*.1f", BENCH_VAL_W, v);
    else
        printf(" %*.2f", BENCH_VAL_W, v);
}

static inline void print_cs(double v)
{
    if (v < 0)
        printf(" %5s", "-");
    else if (v < 0.01)
        printf(" %5.0f", v);
    else
        printf(" %5.2f", v);
}

/* The two column-heading lines. */
static inline void print_columns(void)
{
    printf("%-3s %-*s %-9s %*s %*s %7s %5s %5s  %s\n", "#", BENCH_WHAT_W,
           "measurement", "unit", BENCH_VAL_W, "libstage", BENCH_VAL_W,
           "baseline", "ratio", "cs/op", "cs/op", "baseline is");
    printf("%-3s %-*s %-9s %*s %*s %7s %5s %5s\n", "", BENCH_WHAT_W, "", "",
           BENCH_VAL_W, "", BENCH_VAL_W, "", "", "lib", "base");
}

/* One row: the figures shown for libstage and the baseline (negative:
 * none), the ratio (negative: none), and the context switches per unit of
 * each side (negative: not measured). */
static inline void print_row_ratio(const char *id, const char *what,
                                   const char *unit, double lib, double base,
                                   double ratio, double lcs, double bcs,
                                   const char *basewhat)
{
    printf("%-3s %-*s %-9s", id, BENCH_WHAT_W, what, unit);
    print_value(lib);
    print_value(base);
    if (ratio >= 0)
        printf(" %7.2f", ratio);
    else
        printf(" %7s", "-");
    print_cs(lcs);
    print_cs(bcs);
    printf("  %s\n", basewhat);
    fflush(stdout);
}

/* The same, the ratio being lib / base. */
static inline void print_row(const char *id, const char *what,
                             const char *unit, double lib, double base,
                             double lcs, double bcs, const char *basewhat)
{
    print_row_ratio(id, what, unit, lib, base,
                    lib >= 0 && base > 0 ? lib / base : -1, lcs, bcs,
                    basewhat);
}

struct best {
    double ns; /* best ns per unit */
    double cs; /* context switches per unit in that run */
};

/* Records a run of n units that took v ns per unit and began when csw()
 * was c0, if it is the best so far. */
static inline void best_add(struct best *b, double v, long c0, long n)
{
    double cs = (double)(csw() - c0) / (double)n;
    if (b->ns < 0 || v < b->ns) {
        b->ns = v;
        b->cs = cs;
    }
}

#ifndef BENCH_CUSTOM_ROWS

static inline void print_header(void)
{
    printf("ratio = libstage cost / baseline cost, i.e. time per unit of "
           "work\n(below 1: libstage is cheaper; for a rate, "
           "baseline rate / libstage rate)\n\n");
    print_columns();
}

/* A measurement: runs n units of work, returns ns per unit. */
typedef double (*bench_fn)(long n);

/* How a row shows ns per unit: as a rate (units per second) or in us. */
enum { SHOW_RATE, SHOW_US };

static inline void run_once(bench_fn fn, long n, struct best *b)
{
    long c0 = csw();
    double v = fn(n);
    best_add(b, v, c0, n);
}

static inline double shown(double ns, int show)
{
    if (ns < 0)
        return -1;
    return show == SHOW_RATE ? 1e9 / ns : ns / 1000;
}

/* One row: an untimed warm-up run of each side (n/20 units), then the best
 * of REPS timed runs, alternating libstage and baseline.  base may be NULL
 * (no baseline). */
static inline void row(const char *id, const char *what, const char *unit,
                       int show, bench_fn lib, long nl, bench_fn base, long nb,
                       const char *basewhat)
{
    struct best bl = {-1, -1}, bb = {-1, -1};
    lib(nl / 20 > 0 ? nl / 20 : 1);
    if (base)
        base(nb / 20 > 0 ? nb / 20 : 1);
    for (int r = 0; r < REPS; r++) {
        run_once(lib, nl, &bl);
        if (base)
            run_once(base, nb, &bb);
    }
    print_row_ratio(id, what, unit, shown(bl.ns, show), shown(bb.ns, show),
                    bl.ns >= 0 && bb.ns > 0 ? bl.ns / bb.ns : -1, bl.cs,
                    base ? bb.cs : -1, basewhat);
}

#endif /* !BENCH_CUSTOM_ROWS */

#endif /* BENCH_BENCH_H */
