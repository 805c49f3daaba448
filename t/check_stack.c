/* SPDX-License-Identifier: MIT */
/*
 * check_stack.c - coroutine stacks and the context switch: 100,000 live
 * coroutines on one loop (beyond the guard-page budget, below the kernel's
 * mapping limit), an overflow of a guarded stack dies at once with SIGSEGV,
 * the floating-point control state (rounding mode, MXCSR / x87 control word
 * or FPCR) belongs to each coroutine, the stack is 16-byte aligned at
 * coroutine entry, callee-saved registers survive a switch, stack sizes (1
 * MiB holds 900 KiB of frames, sizes below 16 KiB are rounded up) and stack
 * reuse over 10,000 coroutines.
 *
 * The mapping checks read /proc/self/maps (Linux); without it they are
 * skipped.  The register and alignment checks mean something only when the
 * file is compiled with optimisation (the default -O2), which keeps values
 * in callee-saved registers across stage_yield().
 */
#include "common.h"

#include <alloca.h>
#include <fenv.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif

/* ---- /proc/self/maps ------------------------------------------------------ */

/* Built with a sanitizer?  Their runtimes map shadow memory of their own
 * as the process runs, so mapping counts mean nothing there, and 100,000
 * stacks would cost gigabytes of shadow. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define T_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define T_SANITIZED 1
#endif
#endif
#ifndef T_SANITIZED
#define T_SANITIZED 0
#endif

/* Number of mappings (VMAs) of the process, or -1 without /proc (or when
 * a sanitizer makes the count meaningless). */
static long maps_count(void)
{
    if (T_SANITIZED)
        return -1;
    FILE *f = fopen("/proc/self/maps", "re");
    char buf[4096];
    size_t n, i;
    long lines = 0;

    if (f == NULL)
        return -1;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        for (i = 0; i < n; i++)
            lines += buf[i] == '\n';
    fclose(f);
    return lines;
}

/* 1 when the mapping that holds `addr` has a PROT_NONE mapping right below
 * it (a guard page), 0 when it has not, -1 without /proc. */
static int maps_guarded(const void *addr)
{
    FILE *f = fopen("/proc/self/maps", "re");
    char line[512], perms[8];
    unsigned long lo, hi, prev_hi = 0;
    int prev_none = 0, ret = 0;
    uintptr_t a = (uintptr_t)addr;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3)
            continue;
        if (a >= lo && a < hi) {
            ret = prev_none && prev_hi == lo;
            break;
        }
        prev_hi = hi;
        prev_none = strncmp(perms, "---", 3) == 0;
    }
    fclose(f);
    return ret;
}

/* ---- 100,000 live coroutines ---------------------------------------------- */

#define NMANY 100000
/* Under memcheck: fewer than the library's guard budget (16,382 on a stock
 * kernel), because valgrind cannot hold that many.  Its address-space
 * manager tracks at most VG_N_SEGMENTS = 30,000 segments (valgrind 3.19,
 * aspacemgr-linux.c) and a guarded stack is two of them (guard + stack):
 * it dies with "VG_N_SEGMENTS is too low" near 14,900 guarded stacks. */
#define NMANY_VG 12000
/* The kernel's default vm.max_map_count. */
#define MAX_MAP_COUNT 65530

static struct {
    int n;                /* coroutines to start */
    int started;          /* bodies entered */
    int woke;             /* stage_future_wait returned 0 */
    int finished;         /* bodies left */
    stage_future *gate;   /* every coroutine waits on it */
    stage_future *all_in; /* opened by the last coroutine to start */
} many;

static void *many_body(void *arg)
{
    (void)arg;
    if (++many.started == many.n)
        t_latch_open(many.all_in);
    if (stage_future_wait(many.gate, STAGE_FOREVER) == 0)
        many.woke++;
    many.finished++;
    return NULL;
}

START_TEST(test_100k_coroutines)
{
    stage_loop *loop = stage_loop_current();
    double t0, t1, t2, t3;
    long maps0, maps;
    int i, rc;

    memset(&many, 0, sizeof many);
    many.n = t_slow() || T_SANITIZED ? NMANY_VG : NMANY;
    many.gate = stage_future_new();
    many.all_in = stage_future_new();
    ck_assert_ptr_nonnull(many.gate);
    ck_assert_ptr_nonnull(many.all_in);
    maps0 = maps_count();

    t0 = t_time();
    for (i = 0; i < many.n; i++) {
        rc = stage_coro_spawn(NULL, many_body, NULL, NULL, 0, NULL);
        if (rc != 0)
            ck_abort_msg("spawn #%d failed: %s (%ld mappings)", i,
                         strerror(rc), maps_count());
    }
    ck_assert_uint_eq(stage_loop_count(loop), (size_t)many.n);
    /* Main blocks: the loop starts them all, each one blocks on the gate. */
    t1 = t_time();
    ck_assert_int_eq(stage_future_wait(many.all_in, 600.0), 0);
    t2 = t_time();
    ck_assert_int_eq(many.started, many.n);
    ck_assert_int_eq(many.finished, 0);
    ck_assert_uint_eq(stage_loop_count(loop), (size_t)many.n);
    maps = maps_count();
    if (maps >= 0)
        ck_assert_msg(maps < MAX_MAP_COUNT,
                      "%ld mappings with %d live coroutines (%ld before)",
                      maps, many.n, maps0);

    ck_assert_int_eq(stage_future_resolve(many.gate, NULL, NULL), 0);
    ck_assert_int_eq(stage_loop_run(loop, NULL, 600.0), 0);
    t3 = t_time();
    ck_assert_int_eq(many.woke, many.n);
    ck_assert_int_eq(many.finished, many.n);
    ck_assert_uint_eq(stage_loop_count(loop), 0);
    fprintf(stderr,
            "check_stack: %d coroutines: spawn %.2f s, start and block "
            "%.2f s, wake and finish %.2f s; %ld mappings at the peak "
            "(%ld before)\n",
            many.n, t1 - t0, t2 - t1, t3 - t2, maps, maps0);
    stage_future_unref(many.gate);
    stage_future_unref(many.all_in);
}
END_TEST

/* ---- Overflow of a guarded stack ------------------------------------------ */

/* About 300 bytes of stack per level, every byte of it written, so no
 * frame can step over the guard page.  Not a tail call: the sum after the
 * call keeps each frame alive. */
static __attribute__((noinline)) long deep(long depth)
{
    volatile char buf[256];
    size_t i;
    long sum;

    for (i = 0; i < sizeof buf; i++)
        buf[i] = (char)(depth + (long)i);
    if (depth == 0)
        return buf[0];
    sum = deep(depth - 1);
    return sum + buf[depth % (long)sizeof buf];
}

static const void *overflow_sp; /* an address on the coroutine's stack */

static void *overflow_body(void *arg)
{
    volatile char here = 0;

    overflow_sp = (const void *)&here;
    stage_yield(); /* main checks the guard page now */
    /* 100,000 levels need ~30 MB; the stack has 16 KiB. */
    return (void *)(intptr_t)deep((long)(intptr_t)arg + here);
}

/* Child: spawn the overflowing coroutine.  Exit status 0: it returned
 * (the overflow went unnoticed); 3: its stack had no guard page; 4: spawn
 * failed.  Dying from a signal is the expected outcome. */
static _Noreturn void overflow_child(void)
{
    struct rlimit nocore = {0, 0};
    stage_future *task = NULL;

    setrlimit(RLIMIT_CORE, &nocore);
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    if (stage_coro_spawn(NULL, overflow_body, (void *)(intptr_t)100000, NULL,
                         16 * 1024, &task) != 0)
        _exit(4);
    stage_yield();
    if (overflow_sp == NULL || maps_guarded(overflow_sp) == 0)
        _exit(3);
    stage_future_wait(task, STAGE_FOREVER);
    _exit(0);
}

START_TEST(test_overflow_guarded)
{
    pid_t pid;
    int status = 0;
    /* ASan turns the SIGSEGV into a report and exit(1); memcheck passes
     * the SIGSEGV on (valgrind 3.19), but any death by signal will do. */
    int any_signal = t_on_valgrind(), any_death = 0;

#ifdef T_ASAN
    any_death = 1;
#endif
    /* This process holds no stack now, so the next one is guarded. */
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        overflow_child();
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(!WIFEXITED(status) || WEXITSTATUS(status) != 0,
                  "a stack overflow went unnoticed");
    ck_assert_msg(!WIFEXITED(status) || WEXITSTATUS(status) != 3,
                  "a 16 KiB stack of a fresh process has no guard page");
    ck_assert_msg(!WIFEXITED(status) || WEXITSTATUS(status) != 4,
                  "stage_coro_spawn failed in the child");
    if (any_death)
        return;
    ck_assert_msg(WIFSIGNALED(status), "child exited with status %d",
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    if (any_signal)
        return;
    ck_assert_msg(WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS,
                  "child died from signal %d (%s)", WTERMSIG(status),
                  strsignal(WTERMSIG(status)));
}
END_TEST

/* ---- Floating-point control state ------------------------------------------ */

/* Flush-to-zero: the MXCSR bit (x86-64), the FPCR bit FZ (AArch64). */
#define T_MXCSR_FTZ 0x8000u
#define T_FPCR_FZ (1ul << 24)

typedef struct fpstate {
    int round;           /* fegetround() */
    double third;        /* 1.0 / 3.0 computed in that mode */
    unsigned long ctl;   /* MXCSR control bits or FPCR; 0 elsewhere */
    unsigned short x87;  /* x87 control word (x86-64); 0 elsewhere */
} fpstate;

static void fp_read(fpstate *s)
{
    volatile double one = 1.0, three = 3.0;

    s->round = fegetround();
    s->third = one / three;
    s->ctl = 0;
    s->x87 = 0;
#if defined(__x86_64__)
    s->ctl = __builtin_ia32_stmxcsr() & ~0x3Fu; /* not the status flags */
    __asm__ volatile("fnstcw %0" : "=m"(s->x87));
#elif defined(__aarch64__)
    __asm__ volatile("mrs %0, fpcr" : "=r"(s->ctl));
#endif
}

/* Flush-to-zero, besides the rounding mode: control state that
 * fesetround does not touch.  memcheck does not emulate FTZ: skipped. */
static void fp_set_ftz(int on)
{
#if defined(__x86_64__)
    unsigned int csr = __builtin_ia32_stmxcsr();

    if (t_on_valgrind())
        return;
    __builtin_ia32_ldmxcsr(on ? csr | T_MXCSR_FTZ : csr & ~T_MXCSR_FTZ);
#elif defined(__aarch64__)
    unsigned long fpcr;

    if (t_on_valgrind())
        return;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    fpcr = on ? fpcr | T_FPCR_FZ : fpcr & ~T_FPCR_FZ;
    __asm__ volatile("msr fpcr, %0" : : "r"(fpcr));
#else
    (void)on;
#endif
}

/* The same control state, and the same arithmetic (memcheck rounds SSE
 * arithmetic to nearest whatever the mode, and ignores FTZ). */
static void fp_assert_same(const fpstate *x, const fpstate *y,
                           const char *what)
{
    ck_assert_msg(x->round == y->round && x->ctl == y->ctl &&
                      x->x87 == y->x87,
                  "%s: rounding %#x / %#x, control %#lx / %#lx, x87 %#x / %#x",
                  what, (unsigned)x->round, (unsigned)y->round, x->ctl, y->ctl,
                  (unsigned)x->x87, (unsigned)y->x87);
    if (!t_on_valgrind())
        ck_assert_msg(x->third == y->third, "%s: 1/3 is %.17g / %.17g", what,
                      x->third, y->third);
}

static fpstate fp_a1, fp_a2, fp_b1, fp_b2;
static int fp_set_rc[2];

static void *fp_body_a(void *arg)
{
    (void)arg;
    fp_set_rc[0] = fesetround(FE_UPWARD);
    fp_set_ftz(1);
    fp_read(&fp_a1);
    stage_yield(); /* B runs */
    fp_read(&fp_a2);
    fesetround(FE_TONEAREST);
    fp_set_ftz(0);
    return NULL;
}

static void *fp_body_b(void *arg)
{
    (void)arg;
    fp_read(&fp_b1);
    fp_set_rc[1] = fesetround(FE_DOWNWARD);
    stage_yield(); /* A resumes */
    fp_read(&fp_b2);
    fesetround(FE_TONEAREST);
    return NULL;
}

START_TEST(test_fp_state_per_coroutine)
{
    stage_future *a = NULL, *b = NULL;
    fpstate main0, main1;

    fp_read(&main0);
    ck_assert_int_eq(main0.round, FE_TONEAREST);
    ck_assert_int_eq(stage_coro_spawn(NULL, fp_body_a, NULL, NULL, 0, &a), 0);
    ck_assert_int_eq(stage_coro_spawn(NULL, fp_body_b, NULL, NULL, 0, &b), 0);
    ck_assert_int_eq(stage_future_wait(a, 5.0 * t_tol()), 0);
    ck_assert_int_eq(stage_future_wait(b, 5.0 * t_tol()), 0);
    fp_read(&main1);
    ck_assert_int_eq(fp_set_rc[0], 0);
    ck_assert_int_eq(fp_set_rc[1], 0);

    /* A set its state, which B did not see; B's own change did not leak
     * into A; A found its state again; the root kept the default. */
    ck_assert_int_eq(fp_a1.round, FE_UPWARD);
    ck_assert_int_eq(fp_b2.round, FE_DOWNWARD);
    fp_assert_same(&fp_b1, &main0, "B at its start, main before");
    fp_assert_same(&fp_a2, &fp_a1, "A after its yield, A before");
    fp_assert_same(&main1, &main0, "main after, main before");
#if defined(__x86_64__)
    if (!t_on_valgrind())
        ck_assert_uint_ne(fp_a1.ctl & T_MXCSR_FTZ, 0);
    ck_assert_uint_ne(fp_a1.ctl, main0.ctl);
    ck_assert_uint_ne(fp_a1.x87, main0.x87);
#elif defined(__aarch64__)
    if (!t_on_valgrind())
        ck_assert_uint_ne(fp_a1.ctl & T_FPCR_FZ, 0);
    ck_assert_uint_ne(fp_a1.ctl, main0.ctl);
#endif
    if (!t_on_valgrind())
        ck_assert_double_gt(fp_a1.third, fp_b2.third);
    stage_future_unref(a);
    stage_future_unref(b);
}
END_TEST

/* A new coroutine starts with the FP control state its creator had when
 * it spawned it (as a C11 thread, and as getcontext gives the ucontext
 * backend), not with a default: on AArch64 an all-zero FPCR is the
 * default, so only a changed state shows the difference. */
static void *fp_body_read(void *arg)
{
    fp_read(arg);
    return NULL;
}

START_TEST(test_fp_state_inherited)
{
    stage_future *c = NULL;
    fpstate set, seen;

    ck_assert_int_eq(fesetround(FE_DOWNWARD), 0);
    fp_set_ftz(1);
    fp_read(&set);
    ck_assert_int_eq(stage_coro_spawn(NULL, fp_body_read, &seen, NULL, 0, &c),
                     0);
    /* Back to the default before the coroutine first runs. */
    fesetround(FE_TONEAREST);
    fp_set_ftz(0);
    ck_assert_int_eq(stage_future_wait(c, 5.0 * t_tol()), 0);
    ck_assert_int_eq(seen.round, FE_DOWNWARD);
    fp_assert_same(&seen, &set, "the new coroutine, its creator at the spawn");
#if defined(__x86_64__)
    if (!t_on_valgrind())
        ck_assert_uint_ne(seen.ctl & T_MXCSR_FTZ, 0);
#elif defined(__aarch64__)
    if (!t_on_valgrind())
        ck_assert_uint_ne(seen.ctl & T_FPCR_FZ, 0);
#endif
    stage_future_unref(c);
}
END_TEST

/* ---- Alignment at entry ---------------------------------------------------- */

typedef double t_v2df __attribute__((vector_size(16)));

typedef struct align_rec {
    unsigned int seed;
    uintptr_t misaligned; /* OR of the low 4 bits of every address seen */
    long double ld;       /* x87 (x86-64) or quad (AArch64) arithmetic */
    double vsum;          /* from a 16-byte vector local */
    int ran;
} align_rec;

/* Records the alignment of a 16-byte aligned array and of a vector local
 * that the compiler moves with aligned instructions (movapd faults on a
 * misaligned stack). */
static __attribute__((noinline)) void align_probe(align_rec *r)
{
    _Alignas(16) volatile char buf[16];
    volatile t_v2df v = {(double)r->seed, 0.5};
    volatile long double ld = (long double)r->seed / 3.0L;

    buf[0] = (char)r->seed;
    r->misaligned |= (uintptr_t)buf & 15;
    r->misaligned |= (uintptr_t)&v & 15;
    r->ld = ld * 3.0L;
    r->vsum = v[0] + v[1];
}

static void *align_body(void *arg)
{
    align_rec *r = arg;
    _Alignas(16) volatile char buf[16];

    buf[0] = 1;
    r->misaligned |= (uintptr_t)buf & 15;
    align_probe(r);
    stage_yield();
    align_probe(r);
    r->ran++;
    return NULL;
}

START_TEST(test_alignment_at_entry)
{
    static const size_t sizes[] = {0,         1,      16 * 1024,
                                   65536 + 4096, 100000, 1024 * 1024};
    enum { NSIZE = sizeof sizes / sizeof sizes[0], PER = 8 };
    align_rec recs[NSIZE * PER];
    size_t i;

    memset(recs, 0, sizeof recs);
    for (i = 0; i < NSIZE * PER; i++) {
        recs[i].seed = (unsigned int)(3 * i + 1);
        ck_assert_int_eq(stage_coro_spawn(NULL, align_body, &recs[i], NULL,
                                          sizes[i % NSIZE], NULL),
                         0);
    }
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), NULL, 5.0 * t_tol()),
                     0);
    for (i = 0; i < NSIZE * PER; i++) {
        ck_assert_int_eq(recs[i].ran, 1);
        ck_assert_msg(recs[i].misaligned == 0,
                      "stack_size %zu: misaligned by %u", sizes[i % NSIZE],
                      (unsigned)recs[i].misaligned);
        ck_assert_double_eq_tol((double)recs[i].ld, (double)recs[i].seed,
                                1e-9);
        ck_assert_double_eq(recs[i].vsum, (double)recs[i].seed + 0.5);
    }
}
END_TEST

/* ---- Callee-saved registers ------------------------------------------------ */

#define NREG_CORO 8
#define NREG_YIELDS 3
#define NREG_I 12
#define NREG_D 8

/* What each coroutine computed before yielding, written and read through
 * volatile so that the comparison after the yield uses the locals. */
static volatile long reg_want_i[NREG_CORO][NREG_I];
static volatile double reg_want_d[NREG_CORO][NREG_D];
static int reg_bad[NREG_CORO];
static int reg_rounds[NREG_CORO];

static inline long mix(long x, long k)
{
    /* Unsigned arithmetic: wrapping is defined (UBSan stays quiet). */
    unsigned long u = (unsigned long)x;
    u ^= u >> 29;
    u *= 0x5851f42d4c957f2dUL;
    return (long)(u ^ ((unsigned long)k << 11) ^ (u >> 31));
}

/* Twenty live values depending on the argument: gcc -O2 keeps as many as
 * fit in callee-saved registers (rbx, rbp, r12-r15; x19-x28, d8-d15) across
 * stage_yield() and spills the rest. */
static void *regs_body(void *arg)
{
    int id = (int)(intptr_t)arg;
    /* Even the bookkeeping differs between coroutines, so a register that
     * holds it is told apart from the same register of another one. */
    int round, bad = 1000 * id;
    long s = 0x9e3779b97f4a7c15L ^ (long)id;
    long i0 = mix(s, 0), i1 = mix(i0, 1), i2 = mix(i1, 2), i3 = mix(i2, 3);
    long i4 = mix(i3, 4), i5 = mix(i4, 5), i6 = mix(i5, 6), i7 = mix(i6, 7);
    long i8 = mix(i7, 8), i9 = mix(i8, 9), i10 = mix(i9, 10);
    long i11 = mix(i10, 11);
    double d0 = (double)(i0 & 0xffff) / 7.0, d1 = d0 * 1.5 + (double)id;
    double d2 = d1 * d0 - 3.25, d3 = d2 / 11.0 + d1, d4 = d3 * d3 - d2;
    double d5 = d4 / 3.0 + d0, d6 = d5 - d4 * 0.125, d7 = d6 * 2.5 + d3;

    reg_want_i[id][0] = i0, reg_want_i[id][1] = i1, reg_want_i[id][2] = i2;
    reg_want_i[id][3] = i3, reg_want_i[id][4] = i4, reg_want_i[id][5] = i5;
    reg_want_i[id][6] = i6, reg_want_i[id][7] = i7, reg_want_i[id][8] = i8;
    reg_want_i[id][9] = i9, reg_want_i[id][10] = i10;
    reg_want_i[id][11] = i11;
    reg_want_d[id][0] = d0, reg_want_d[id][1] = d1, reg_want_d[id][2] = d2;
    reg_want_d[id][3] = d3, reg_want_d[id][4] = d4, reg_want_d[id][5] = d5;
    reg_want_d[id][6] = d6, reg_want_d[id][7] = d7;
    for (round = 100 * id; round < 100 * id + NREG_YIELDS; round++) {
        stage_yield();
        bad += i0 != reg_want_i[id][0];
        bad += i1 != reg_want_i[id][1];
        bad += i2 != reg_want_i[id][2];
        bad += i3 != reg_want_i[id][3];
        bad += i4 != reg_want_i[id][4];
        bad += i5 != reg_want_i[id][5];
        bad += i6 != reg_want_i[id][6];
        bad += i7 != reg_want_i[id][7];
        bad += i8 != reg_want_i[id][8];
        bad += i9 != reg_want_i[id][9];
        bad += i10 != reg_want_i[id][10];
        bad += i11 != reg_want_i[id][11];
        bad += d0 != reg_want_d[id][0];
        bad += d1 != reg_want_d[id][1];
        bad += d2 != reg_want_d[id][2];
        bad += d3 != reg_want_d[id][3];
        bad += d4 != reg_want_d[id][4];
        bad += d5 != reg_want_d[id][5];
        bad += d6 != reg_want_d[id][6];
        bad += d7 != reg_want_d[id][7];
        reg_rounds[id]++;
    }
    reg_bad[id] = bad - 1000 * id;
    return NULL;
}

/* Exactly six values live across one stage_yield(): gcc -O2 keeps all of
 * them in the six callee-saved registers of x86-64 (rbx, rbp, r12-r15),
 * where regs_body may have used some of those for bookkeeping only. */
static volatile long reg_few_want[NREG_CORO][5];
static int reg_few_bad[NREG_CORO];

static void *regs_few_body(void *arg)
{
    int id = (int)(intptr_t)arg;
    volatile long *want = reg_few_want[id];
    long a = mix(id, 21), b = mix(a, 22), c = mix(b, 23), d = mix(c, 24);
    long e = mix(d, 25);

    want[0] = a, want[1] = b, want[2] = c, want[3] = d, want[4] = e;
    stage_yield();
    reg_few_bad[id] = (a != want[0]) + (b != want[1]) + (c != want[2]) +
                      (d != want[3]) + (e != want[4]);
    return NULL;
}

START_TEST(test_callee_saved_registers)
{
    int i;

    memset(reg_bad, 0, sizeof reg_bad);
    memset(reg_rounds, 0, sizeof reg_rounds);
    memset(reg_few_bad, 0, sizeof reg_few_bad);
    /* Several coroutines with different values interleave: each switch
     * loads another coroutine's registers. */
    for (i = 0; i < NREG_CORO; i++) {
        ck_assert_int_eq(stage_coro_spawn(NULL, regs_body, (void *)(intptr_t)i,
                                          NULL, 0, NULL),
                         0);
        ck_assert_int_eq(stage_coro_spawn(NULL, regs_few_body,
                                          (void *)(intptr_t)i, NULL, 0, NULL),
                         0);
    }
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), NULL, 5.0 * t_tol()),
                     0);
    for (i = 0; i < NREG_CORO; i++) {
        ck_assert_int_eq(reg_rounds[i], NREG_YIELDS);
        ck_assert_msg(reg_bad[i] == 0,
                      "coroutine %d: %d values changed across stage_yield", i,
                      reg_bad[i]);
        ck_assert_msg(reg_few_bad[i] == 0,
                      "coroutine %d: %d of 5 register values changed across "
                      "stage_yield", i, reg_few_bad[i]);
    }
    /* Distinct per coroutine: the values were not constants. */
    ck_assert_int_ne(reg_want_i[0][11], reg_want_i[1][11]);
}
END_TEST

/* ---- Stack sizes ----------------------------------------------------------- */

typedef struct use_arg {
    size_t bytes; /* stack to touch */
    long sum;     /* -1 until done */
} use_arg;

/* Touch `bytes` of this frame, one write per 256 bytes and the last byte. */
static __attribute__((noinline)) long use_stack(size_t bytes)
{
    volatile unsigned char *p = alloca(bytes);
    size_t i;
    long sum = 0;

    for (i = 0; i < bytes; i += 256)
        p[i] = (unsigned char)(i >> 8);
    p[bytes - 1] = 1;
    for (i = 0; i < bytes; i += 256)
        sum += p[i];
    return sum + p[bytes - 1];
}

static void *use_body(void *arg)
{
    use_arg *u = arg;

    u->sum = use_stack(u->bytes);
    return NULL;
}

START_TEST(test_stack_sizes)
{
    static const struct {
        size_t stack, use;
    } cases[] = {
        {1024 * 1024, 900 * 1024}, /* 1 MiB holds 900 KiB of frames */
        {1, 12 * 1024},            /* below 16 KiB: rounded up */
        {4096, 12 * 1024},
        {12 * 1024, 12 * 1024},
        {16 * 1024 - 1, 12 * 1024},
    };
    enum { NCASE = sizeof cases / sizeof cases[0] };
    use_arg u[NCASE];
    size_t i;

    /* All alive at once, each on its own stack. */
    for (i = 0; i < NCASE; i++) {
        u[i].bytes = cases[i].use;
        u[i].sum = -1;
        ck_assert_int_eq(stage_coro_spawn(NULL, use_body, &u[i], NULL,
                                          cases[i].stack, NULL),
                         0);
    }
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), NULL, 5.0 * t_tol()),
                     0);
    for (i = 0; i < NCASE; i++)
        ck_assert_msg(u[i].sum > 0, "stack_size %zu, %zu bytes used: sum %ld",
                      cases[i].stack, cases[i].use, u[i].sum);
}
END_TEST

/* ---- Stack reuse ------------------------------------------------------------- */

#define NREUSE 10000

static void *reuse_body(void *arg)
{
    int *ran = arg;

    (*ran)++;
    stage_yield();
    return ran;
}

/* Spawn, run to the end, next: the stacks go back to the loop's cache (or
 * to the kernel for a non-default size) and nothing accumulates. */
START_TEST(test_stack_reuse_sequential)
{
    static int ran[NREUSE];
    long maps0, maps;
    int i, bad = 0;

    memset(ran, 0, sizeof ran);
    maps0 = maps_count();
    for (i = 0; i < NREUSE; i++) {
        stage_future *task = NULL;
        void *v = NULL;
        /* Mostly the default size (cached); every fourth a 64 KiB one. */
        size_t size = i % 4 == 3 ? 64 * 1024 : 0;

        if (stage_coro_spawn(NULL, reuse_body, &ran[i], NULL, size, &task))
            ck_abort_msg("spawn #%d failed", i);
        if (stage_future_get(task, 5.0 * t_tol(), &v) != 0 ||
            stage_future_state(task) != STAGE_DONE || v != &ran[i])
            bad++;
        stage_future_unref(task);
    }
    maps = maps_count();
    ck_assert_int_eq(bad, 0);
    for (i = 0; i < NREUSE; i++)
        if (ran[i] != 1)
            ck_abort_msg("coroutine %d ran %d times", i, ran[i]);
    ck_assert_uint_eq(stage_loop_count(stage_loop_current()), 0);
    /* One cached stack (and its guard) at most. */
    if (maps0 >= 0)
        ck_assert_msg(maps <= maps0 + 4, "%ld mappings, %ld before", maps,
                      maps0);
}
END_TEST

/* More live coroutines than the cache holds (256), ten times over: the
 * overflow is unmapped, the mapping count returns to where it was. */
START_TEST(test_stack_reuse_batches)
{
    enum { BATCH = 300, ROUNDS = 10 };
    static int ran[BATCH];
    long maps1 = -1, maps;
    int r, i;

    for (r = 0; r < ROUNDS; r++) {
        memset(ran, 0, sizeof ran);
        for (i = 0; i < BATCH; i++)
            ck_assert_int_eq(
                stage_coro_spawn(NULL, reuse_body, &ran[i], NULL, 0, NULL), 0);
        ck_assert_int_eq(
            stage_loop_run(stage_loop_current(), NULL, 5.0 * t_tol()), 0);
        for (i = 0; i < BATCH; i++)
            ck_assert_int_eq(ran[i], 1);
        maps = maps_count();
        if (r == 0)
            maps1 = maps;
        else if (maps1 >= 0)
            ck_assert_msg(maps <= maps1 + 4, "round %d: %ld mappings, %ld "
                          "after the first round", r, maps, maps1);
    }
}
END_TEST

static Suite *stack_suite(void)
{
    Suite *s = suite_create("stack");
    TCase *tc;

    /* ~20 us per first-touched page and ~25 us per munmap on this
     * project's VMs: 100,000 coroutines take 10 to 40 s. */
    tc = t_tcase(s, "many", 300);
    tcase_add_test(tc, test_100k_coroutines);

    tc = t_tcase(s, "guard", 10);
    tcase_add_test(tc, test_overflow_guarded);

    tc = t_tcase(s, "switch", 5);
    tcase_add_test(tc, test_fp_state_per_coroutine);
    tcase_add_test(tc, test_fp_state_inherited);
    tcase_add_test(tc, test_alignment_at_entry);
    tcase_add_test(tc, test_callee_saved_registers);

    tc = t_tcase(s, "sizes", 30);
    tcase_add_test(tc, test_stack_sizes);
    tcase_add_test(tc, test_stack_reuse_sequential);
    tcase_add_test(tc, test_stack_reuse_batches);
    return s;
}

T_MAIN(stack_suite)
