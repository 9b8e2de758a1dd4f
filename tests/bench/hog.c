/* hog.c - less spare CPU, on this machine: takes a share of every core for a while, so a
 * benchmark can say how much of the box it can do without (docs/BENCHMARKS.md: these VMs
 * run 1.2-2.5x slower on some days). Not a test.
 *   hog SHARE SECONDS [PERIOD_US [MEM_MB]]
 * One process per core (sysconf), each burning SHARE of every PERIOD_US (default 200 µs,
 * 10 to 1,000,000) and sleeping the rest, at the caller's priority. It is scheduled inside
 * this machine, fairly: it gets SHARE while the cores have it to spare and less when every
 * core is busy (0.35 asked took ~22 % of the cores' time under the end-to-end bench), so a
 * bench reads what it took. A short period preempts whatever runs every few hundred µs; a
 * long one mostly fills idle time. What it does not give is a slower core or slower memory
 * (a crowded host's): each operation of a program runs as fast as without it. With MEM_MB
 * (a whole number, 0 to 4,096; 0: none), each burn walks its own buffer of that size (so
 * MEM_MB times the cores in all: mind the machine's free memory) a cache line at a time instead
 * of looping in registers: the caches the cores share and the memory bus are then busy as a
 * neighbour's would be, and the other core's work slows while its time is its own (run it
 * under `chrt -i 0`, SCHED_IDLE, to take only the time nothing else wants: at `nice -n 19`
 * this kernel's scheduler still gave it ~1 core of 2 under the end-to-end bench). Stops after
 * SECONDS (at most 1,000,000), or when its parent ends (a bench killed with SIGKILL takes
 * it along: PR_SET_PDEATHSIG; HOG_PARENT=pid in its environment names the parent it must
 * have, for a parent that may die before the hog starts), or when killed; each child dies
 * with it, and when one fails (its buffer not allocated) the others are stopped and the hog
 * exits 1. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void burn(double share, long long period_ns, long long until_ns, size_t mem)
{
    long long busy = (long long)(share * (double)period_ns);
    long long idle = period_ns - busy;
    volatile unsigned long x = 0;
    volatile unsigned char *buf = mem ? malloc(mem) : NULL;
    size_t at = 0;

    if (mem && !buf) {
        perror("hog: malloc");
        _exit(1);
    }
    for (size_t i = 0; i < mem; i += 4096)
        buf[i] = 1; /* every page faulted in before the first round */

    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL); /* sleeps as short as asked */
    /* each round burns `busy` from when it starts and then sleeps `idle`: a sleep that
     * overshoots lengthens that round instead of eating the next one's burn */
    for (long long start = now_ns(); start < until_ns; start = now_ns()) {
        long long end = start + busy < until_ns ? start + busy : until_ns;
        while (now_ns() < end) {
            if (buf) {
                for (int i = 0; i < 100; i++, at = (at + 64) % mem)
                    buf[at] = (unsigned char)(buf[at] + 1);
            } else {
                for (int i = 0; i < 100; i++)
                    x += (unsigned long)i;
            }
        }
        long long rest = until_ns - now_ns() < idle ? until_ns - now_ns() : idle;
        if (rest <= 0)
            break;
        struct timespec ts = {rest / 1000000000LL, rest % 1000000000LL};
        nanosleep(&ts, NULL);
    }
}

/* a whole decimal number in [lo, hi], or NaN */
static double number(const char *s, double lo, double hi)
{
    char *end;

    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !(v >= lo && v <= hi))
        return NAN;
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: hog SHARE SECONDS [PERIOD_US [MEM_MB]]\n");
        return 2;
    }
    double share = number(argv[1], 0.0, 1.0);
    double secs = number(argv[2], 0.0, 1e6);
    double period_us = argc > 3 ? number(argv[3], 10, 1e6) : 200;
    double mem_mb = argc > 4 ? number(argv[4], 0, 4096) : 0;
    if (mem_mb == mem_mb /* not NaN: the cast below would be undefined */
        && (mem_mb != (double)(long long)mem_mb || mem_mb > (double)(SIZE_MAX >> 20)))
        mem_mb = NAN; /* not a whole number, or more than a size_t holds */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    if (!(share > 0 && share < 1) || !(secs > 0) || period_us != period_us
        || mem_mb != mem_mb || ncpu < 1) {
        fprintf(stderr, "hog: SHARE must be a number above 0 and below 1, SECONDS above 0 "
                        "and at most 1000000, PERIOD_US from 10 to 1000000, MEM_MB a whole "
                        "number from 0 to 4096\n");
        return 2;
    }
    /* ends with the program that started it (the bench), however that one ends: the
     * parent it must have is HOG_PARENT's, else the one it has before the prctl */
    const char *want = getenv("HOG_PARENT");
    pid_t grandparent = want && *want ? (pid_t)atol(want) : getppid();
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != grandparent)
        return 0;

    long long period_ns = (long long)(period_us * 1000.0);
    long long until = now_ns() + (long long)(secs * 1e9);
    pid_t self = getpid();
    for (long i = 0; i < ncpu; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("hog: fork");
            return 1; /* the children started so far die with it (PR_SET_PDEATHSIG) */
        }
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != self) /* it died before the line above */
                _exit(0);
            burn(share, period_ns, until, (size_t)mem_mb << 20);
            _exit(0);
        }
    }
    int st;
    while (wait(&st) > 0)
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            return 1; /* the others die with it (PR_SET_PDEATHSIG) */
    return 0;
}
