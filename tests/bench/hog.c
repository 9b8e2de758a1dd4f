/* hog.c - a slower machine, on this one: takes a share of every core for a while, so a
 * benchmark can be run with less CPU than the machine has (docs/BENCHMARKS.md: these VMs run
 * 1.2-2.5x slower on some days, and a figure should say how it behaves then). Not a test.
 *   hog SHARE SECONDS [PERIOD_US]
 * One process per core (sysconf), each burning SHARE of every PERIOD_US (default 2,000 µs)
 * and sleeping the rest, at the default priority: it gets that share while the cores have
 * it to spare, and less when every core is busy (the scheduler shares them fairly: 0.35
 * asked took 22 % of the cores' time under the end-to-end bench), so a bench reads what it
 * took. A short period (200 µs) preempts whatever runs every few hundred µs, stretching
 * each operation as a slower core does; a long one mostly fills idle time. SHARE 0.167
 * leaves 0.833 of each core: a machine 1.2x slower by capacity (not by slower memory, as a
 * crowded host also is). Stops after SECONDS, or when killed (each child dies with it:
 * PR_SET_PDEATHSIG). */
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

static void burn(double share, long long period_ns, long long until_ns)
{
    long long busy = (long long)(share * (double)period_ns);
    long long idle = period_ns - busy;
    volatile unsigned long x = 0;

    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL); /* sleeps as short as asked */
    /* each round burns `busy` from when it starts and then sleeps `idle`: a sleep that
     * overshoots lengthens that round instead of eating the next one's burn */
    for (long long start = now_ns(); start < until_ns; start = now_ns()) {
        while (now_ns() - start < busy)
            for (int i = 0; i < 100; i++)
                x += (unsigned long)i;
        struct timespec ts = {idle / 1000000000LL, idle % 1000000000LL};
        nanosleep(&ts, NULL);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: hog SHARE SECONDS [PERIOD_US]\n");
        return 2;
    }
    double share = atof(argv[1]);
    double secs = atof(argv[2]);
    long long period_ns = (argc > 3 ? atoll(argv[3]) : 2000) * 1000LL;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    if (share <= 0 || share >= 1 || secs <= 0 || period_ns <= 0 || ncpu < 1) {
        fprintf(stderr, "hog: SHARE must be in (0, 1), SECONDS and PERIOD_US above 0\n");
        return 2;
    }
    long long until = now_ns() + (long long)(secs * 1e9);
    for (long i = 0; i < ncpu; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("hog: fork");
            return 1;
        }
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() == 1) /* the parent died before the line above */
                _exit(0);
            burn(share, period_ns, until);
            _exit(0);
        }
    }
    while (wait(NULL) > 0)
        ;
    return 0;
}
