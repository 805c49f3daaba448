/* SPDX-License-Identifier: MIT */
/*
 * failalloc.c - an LD_PRELOAD interposer for the fault-injection sweep
 * (t/fault_sweep.c, t/fault-sweep.sh).  It keeps the library clean: no
 * test hook is compiled into libstage.
 *
 * It wraps the calls through which libstage obtains resources:
 *
 *   memory   malloc calloc realloc strdup vasprintf
 *   mappings mmap mprotect (coroutine stacks)
 *   threads  pthread_create
 *
 * and acts only on calls made directly by libstage's own code (the return
 * address lies in the text of the loaded libstage.so), so the test program,
 * libc's internals and the dynamic loader are never disturbed.
 *
 * Failure injection: failalloc_arm(n, mode, kinds) counts the libstage
 * calls of the selected kinds from then on; the n-th fails (mode ONCE) or
 * the n-th and every later one (mode AFTER), as the real call would fail
 * for want of resources: NULL and ENOMEM, MAP_FAILED and ENOMEM, -1 and
 * ENOMEM, EAGAIN from pthread_create.  failalloc_disarm() stops it and
 * returns how many calls were counted; failalloc_fired() says whether the
 * failure happened.
 *
 * Leak accounting, always on in a libstage process: every block and
 * mapping that libstage obtained is recorded with the address of the call
 * that obtained it, and forgotten when anybody frees it (free, realloc,
 * munmap).  failalloc_live() counts what is left; with FAILALLOC_LEAKCHECK
 * set, a destructor that runs after the atexit handlers (libstage's own
 * included) prints what was never freed and exits with status 99.
 *
 * The real allocator is reached through glibc's __libc_malloc family, so
 * no dlsym is needed on the allocation path (glibc's dlsym allocates).
 * Other C libraries (musl) have no such family: there the next malloc,
 * calloc, realloc and free are found with dlsym(RTLD_NEXT), once, at load
 * time (musl's dlsym does not allocate).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FA_EXPORT __attribute__((visibility("default")))

/* What failalloc_arm's `kinds` selects. */
enum { FA_MEM = 1, FA_MAP = 2, FA_THREAD = 4, FA_ALL = 7 };
/* failalloc_arm's `mode`. */
enum { FA_ONCE = 0, FA_AFTER = 1 };

/* The controls, found by the test program with dlsym. */
FA_EXPORT void failalloc_arm(long n, int mode, int kinds);
FA_EXPORT long failalloc_disarm(void);
FA_EXPORT int failalloc_fired(void);
FA_EXPORT size_t failalloc_live(void);
FA_EXPORT void failalloc_dump(FILE *out, size_t max);

#ifdef __GLIBC__
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
#define real_malloc __libc_malloc
#define real_calloc __libc_calloc
#define real_realloc __libc_realloc
#define real_free __libc_free
#else
static void *(*next_malloc)(size_t);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);
static void (*next_free)(void *);

/* Found before main (a constructor), or at the first call if another
 * constructor allocates first: the values are the same either way. */
__attribute__((constructor)) static void find_next(void)
{
    if (next_free)
        return;
    next_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    next_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    next_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    next_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
}

static void *real_malloc(size_t n)
{
    find_next();
    return next_malloc(n);
}

static void *real_calloc(size_t n, size_t m)
{
    find_next();
    return next_calloc(n, m);
}

static void *real_realloc(void *p, size_t n)
{
    find_next();
    return next_realloc(p, n);
}

static void real_free(void *p)
{
    find_next();
    next_free(p);
}
#endif

/* ---- Who is calling ------------------------------------------------------ */

/* The executable range of libstage.so, found once (0, 0: not loaded, and
 * then the interposer does nothing at all). */
static uintptr_t lib_lo, lib_hi;
static atomic_int lib_state; /* 0 unknown, 1 found, 2 absent */

static int find_lib(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    if (!info->dlpi_name || !strstr(info->dlpi_name, "libstage.so"))
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            lib_lo = info->dlpi_addr + ph->p_vaddr;
            lib_hi = lib_lo + ph->p_memsz;
            return 1;
        }
    }
    return 0;
}

__attribute__((constructor)) static void fa_init(void)
{
    dl_iterate_phdr(find_lib, NULL);
    atomic_store(&lib_state, lib_hi ? 1 : 2);
}

static int from_lib(const void *ret)
{
    if (atomic_load_explicit(&lib_state, memory_order_relaxed) != 1)
        return 0;
    uintptr_t a = (uintptr_t)ret;
    return a >= lib_lo && a < lib_hi;
}

/* ---- Failure injection ----------------------------------------------------- */

static atomic_long countdown; /* calls left before the failure; <= 0: off */
static atomic_long counted;   /* calls counted since the last arm */
static atomic_int armed_kinds, armed_mode, fired;

FA_EXPORT void failalloc_arm(long n, int mode, int kinds)
{
    atomic_store(&counted, 0);
    atomic_store(&fired, 0);
    atomic_store(&armed_mode, mode);
    atomic_store(&countdown, n);
    atomic_store(&armed_kinds, kinds);
}

FA_EXPORT long failalloc_disarm(void)
{
    atomic_store(&armed_kinds, 0);
    return atomic_load(&counted);
}

FA_EXPORT int failalloc_fired(void) { return atomic_load(&fired); }

/* Should this libstage call of `kind` fail? */
static int should_fail(int kind)
{
    if (!(atomic_load(&armed_kinds) & kind))
        return 0;
    atomic_fetch_add(&counted, 1);
    long left = atomic_fetch_sub(&countdown, 1) - 1;
    if (left == 0 || (left < 0 && atomic_load(&armed_mode) == FA_AFTER &&
                      atomic_load(&fired))) {
        atomic_store(&fired, 1);
        return 1;
    }
    return 0;
}

/* ---- Leak accounting ------------------------------------------------------- */

/* An open-addressing set of live blocks and mappings, keyed by address.
 * Deleted slots become tombstones; the table never shrinks. */
typedef struct rec {
    uintptr_t addr; /* 0 empty, 1 tombstone */
    size_t len;     /* mappings: length; blocks: 0 */
    const void *site;
    int map;
} rec;

#define NREC (1u << 20)
static rec *recs;
static size_t nlive;
static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t slot_of(uintptr_t a) { return (size_t)((a >> 4) * 2654435761u) & (NREC - 1); }

static void rec_add(const void *p, size_t len, const void *site, int map)
{
    if (!p)
        return;
    pthread_mutex_lock(&rec_lock);
    if (!recs) {
        recs = mmap(NULL, NREC * sizeof *recs, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (recs == MAP_FAILED) {
            recs = NULL;
            pthread_mutex_unlock(&rec_lock);
            return;
        }
    }
    size_t i = slot_of((uintptr_t)p);
    for (size_t k = 0; k < NREC; k++, i = (i + 1) & (NREC - 1)) {
        if (recs[i].addr <= 1) {
            recs[i] = (rec){(uintptr_t)p, len, site, map};
            nlive++;
            break;
        }
    }
    pthread_mutex_unlock(&rec_lock);
}

static void rec_del(const void *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&rec_lock);
    if (recs) {
        size_t i = slot_of((uintptr_t)p);
        for (size_t k = 0; k < NREC && recs[i].addr; k++,
                    i = (i + 1) & (NREC - 1)) {
            if (recs[i].addr == (uintptr_t)p) {
                recs[i].addr = 1;
                nlive--;
                break;
            }
        }
    }
    pthread_mutex_unlock(&rec_lock);
}

FA_EXPORT size_t failalloc_live(void)
{
    pthread_mutex_lock(&rec_lock);
    size_t n = nlive;
    pthread_mutex_unlock(&rec_lock);
    return n;
}

/* Print every live record (at most `max`), with the call site inside
 * libstage as an offset that addr2line understands. */
FA_EXPORT void failalloc_dump(FILE *out, size_t max)
{
    pthread_mutex_lock(&rec_lock);
    size_t shown = 0;
    for (size_t i = 0; recs && i < NREC && shown < max; i++) {
        if (recs[i].addr <= 1)
            continue;
        Dl_info di;
        const char *obj = "?";
        uintptr_t off = (uintptr_t)recs[i].site;
        if (dladdr(recs[i].site, &di) && di.dli_fname) {
            obj = di.dli_fname;
            off -= (uintptr_t)di.dli_fbase;
        }
        fprintf(out, "failalloc: live %s %p (%zu bytes) from %s+0x%lx\n",
                recs[i].map ? "mapping" : "block", (void *)recs[i].addr,
                recs[i].len, obj, (unsigned long)off);
        shown++;
    }
    pthread_mutex_unlock(&rec_lock);
}

/* Runs after the atexit handlers: whatever libstage still holds now was
 * leaked. */
__attribute__((destructor)) static void fa_fini(void)
{
    const char *e = getenv("FAILALLOC_LEAKCHECK");
    if (!e || !*e || !strcmp(e, "0") || atomic_load(&lib_state) != 1)
        return;
    if (failalloc_live() == 0)
        return;
    fprintf(stderr, "failalloc: %zu leaked at exit\n", failalloc_live());
    failalloc_dump(stderr, 20);
    fflush(stderr);
    _exit(99);
}

/* ---- Memory ---------------------------------------------------------------- */

FA_EXPORT void *malloc(size_t n)
{
    const void *site = __builtin_return_address(0);
    if (!from_lib(site))
        return real_malloc(n);
    if (should_fail(FA_MEM)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = real_malloc(n);
    rec_add(p, 0, site, 0);
    return p;
}

FA_EXPORT void *calloc(size_t n, size_t m)
{
    const void *site = __builtin_return_address(0);
    if (!from_lib(site))
        return real_calloc(n, m);
    if (should_fail(FA_MEM)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = real_calloc(n, m);
    rec_add(p, 0, site, 0);
    return p;
}

FA_EXPORT void *realloc(void *old, size_t n)
{
    const void *site = __builtin_return_address(0);
    if (!from_lib(site)) {
        void *p = real_realloc(old, n);
        /* A libstage block resized by someone else stays libstage's. */
        if (p != old && old && p) {
            rec_del(old);
        }
        return p;
    }
    if (should_fail(FA_MEM)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = real_realloc(old, n);
    if (p || n == 0)
        rec_del(old);
    rec_add(p, 0, site, 0);
    return p;
}

FA_EXPORT void free(void *p)
{
    rec_del(p);
    real_free(p);
}

FA_EXPORT char *strdup(const char *s)
{
    const void *site = __builtin_return_address(0);
    int mine = from_lib(site);
    if (mine && should_fail(FA_MEM)) {
        errno = ENOMEM;
        return NULL;
    }
    size_t n = strlen(s) + 1;
    char *p = real_malloc(n);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    memcpy(p, s, n);
    if (mine)
        rec_add(p, 0, site, 0);
    return p;
}

typedef int (*vasprintf_fn)(char **, const char *, va_list);

FA_EXPORT int vasprintf(char **out, const char *fmt, va_list ap)
{
    static vasprintf_fn real;
    const void *site = __builtin_return_address(0);
    if (!real)
        real = (vasprintf_fn)dlsym(RTLD_NEXT, "vasprintf");
    int mine = from_lib(site);
    if (mine && should_fail(FA_MEM)) {
        errno = ENOMEM;
        return -1;
    }
    int n = real(out, fmt, ap);
    if (mine && n >= 0)
        rec_add(*out, 0, site, 0);
    return n;
}

/* ---- Mappings -------------------------------------------------------------- */

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);
typedef int (*mprotect_fn)(void *, size_t, int);

FA_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd,
                     off_t off)
{
    static mmap_fn real;
    const void *site = __builtin_return_address(0);
    if (!real)
        real = (mmap_fn)dlsym(RTLD_NEXT, "mmap");
    int mine = from_lib(site);
    if (mine && should_fail(FA_MAP)) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    void *p = real(addr, len, prot, flags, fd, off);
    if (mine && p != MAP_FAILED)
        rec_add(p, len, site, 1);
    return p;
}

FA_EXPORT int munmap(void *addr, size_t len)
{
    static munmap_fn real;
    if (!real)
        real = (munmap_fn)dlsym(RTLD_NEXT, "munmap");
    rec_del(addr);
    return real(addr, len);
}

FA_EXPORT int mprotect(void *addr, size_t len, int prot)
{
    static mprotect_fn real;
    if (!real)
        real = (mprotect_fn)dlsym(RTLD_NEXT, "mprotect");
    if (from_lib(__builtin_return_address(0)) && should_fail(FA_MAP)) {
        errno = ENOMEM;
        return -1;
    }
    return real(addr, len, prot);
}

/* ---- Threads --------------------------------------------------------------- */

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *,
                         void *(*)(void *), void *);

FA_EXPORT int pthread_create(pthread_t *th, const pthread_attr_t *attr,
                             void *(*fn)(void *), void *arg)
{
    static create_fn real;
    if (!real)
        real = (create_fn)dlsym(RTLD_NEXT, "pthread_create");
    if (from_lib(__builtin_return_address(0)) && should_fail(FA_THREAD))
        return EAGAIN;
    return real(th, attr, fn, arg);
}
