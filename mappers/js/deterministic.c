/*
 * Makes a componentize-qjs build reproducible (Linux, LD_PRELOAD; used by build.sh).
 *
 * componentize-qjs runs the JavaScript once at build time (Wizer) and snapshots the memory
 * of the initialised QuickJS engine into the component. During that run the guest reads
 * the host's entropy and clocks through WASI: Rust hash-map seeds, the Math.random seed
 * (the wall clock, in microseconds) and the performance.now() origin (the monotonic clock)
 * end up in the snapshot, so two builds of the same source differ in ~180 bytes.
 *
 * Preloaded into the one `node` process that runs componentize-qjs, this library gives
 * that whole process fixed entropy (every getrandom call returns the same bytes) and
 * stopped clocks (CLOCK_REALTIME at 2023-11-14T22:13:20Z, CLOCK_MONOTONIC at 1000 s), so
 * the snapshot, and the component, depend on the sources only. Nothing of this reaches
 * the mapper at run time: it is built with every WASI import stubbed out, has no clock
 * and no entropy, and its Math.random sequence is the snapshot's (the same every call).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>

#define FIXED_REALTIME 1700000000
#define FIXED_MONOTONIC 1000

/* The same bytes for every call, whatever the order in which threads call. */
static void fill(void *buf, size_t len) {
    unsigned char *p = buf;
    for (size_t i = 0; i < len; i++) {
        unsigned long long x = (unsigned long long)i * 0x9e3779b97f4a7c15ULL;
        x ^= x >> 29;
        x *= 0xbf58476d1ce4e5b9ULL;
        p[i] = (unsigned char)(x >> 56);
    }
}

ssize_t getrandom(void *buf, size_t len, unsigned int flags) {
    (void)flags;
    fill(buf, len);
    return (ssize_t)len;
}

int getentropy(void *buf, size_t len) {
    fill(buf, len);
    return 0;
}

/* Rust's getrandom 0.2 (rand, cap-rand, wasmtime-wasi) calls the syscall directly. */
long syscall(long number, ...) {
    va_list ap;
    long a[6];
    va_start(ap, number);
    for (int i = 0; i < 6; i++) a[i] = va_arg(ap, long);
    va_end(ap);
    if (number == SYS_getrandom) {
        fill((void *)a[0], (size_t)a[1]);
        return a[1];
    }
    static long (*real)(long, ...);
    if (!real) real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
    return real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    if (id == CLOCK_REALTIME || id == CLOCK_MONOTONIC) {
        ts->tv_sec = id == CLOCK_REALTIME ? FIXED_REALTIME : FIXED_MONOTONIC;
        ts->tv_nsec = 0;
        return 0;
    }
    static int (*real)(clockid_t, struct timespec *);
    if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    return real(id, ts);
}
