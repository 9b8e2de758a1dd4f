/* calib.c - how fast this machine is right now, so that figures from different machines
 * (and from one machine at different times: these VMs share their hosts) can be compared.
 * Not a test: it prints one Markdown table row. Run by tests/bench/versions.sh before and
 * after every `make bench`.
 *   loop   a fixed integer loop on one core, the best of 5 (ns per iteration; lower is
 *          faster; docs/BENCHMARKS.md has the figures of the machines seen so far).
 *   both   the same loop on each core at once: the slower core's time over the one-core
 *          time (1.0: the two cores do not slow each other down).
 *   fault  the first touch of a fresh anonymous page, the best of 3 (µs; a page fault
 *          and the page's zeroing, which a VM may also have to get from its host). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOOP_N 200000000UL
#define FAULT_BYTES (256UL << 20)

static double now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double loop_once(void)
{
    volatile uint64_t x = 0;
    double t0 = now_s();

    for (uint64_t i = 0; i < LOOP_N; i++)
        x += i;
    return (now_s() - t0) * 1e9 / (double)LOOP_N;
}

static double loop_best(int runs)
{
    double best = 1e9;

    for (int i = 0; i < runs; i++) {
        double ns = loop_once();
        if (ns < best)
            best = ns;
    }
    return best;
}

/* the loop on every core at once, each in a child; the slowest child's ns per iteration */
static double loop_all(int cores)
{
    int fds[2];
    double worst = 0;

    if (pipe(fds) != 0)
        return -1;
    for (int c = 0; c < cores; c++) {
        pid_t p = fork();
        if (p < 0)
            return -1;
        if (p == 0) {
            double ns = loop_once();
            if (write(fds[1], &ns, sizeof ns) != (ssize_t)sizeof ns)
                _exit(1);
            _exit(0);
        }
    }
    close(fds[1]);
    for (int c = 0; c < cores; c++) {
        double ns;
        if (read(fds[0], &ns, sizeof ns) == (ssize_t)sizeof ns && ns > worst)
            worst = ns;
    }
    close(fds[0]);
    while (wait(NULL) > 0)
        ;
    return worst;
}

static double fault_us(void)
{
    double best = 1e9;
    long page = sysconf(_SC_PAGESIZE);

    for (int r = 0; r < 3; r++) {
        double t0 = now_s();
        volatile char *p = mmap(NULL, FAULT_BYTES, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return -1;
        for (size_t off = 0; off < FAULT_BYTES; off += (size_t)page)
            p[off] = 1;
        double us = (now_s() - t0) * 1e6 / (double)(FAULT_BYTES / (size_t)page);
        munmap((void *)p, FAULT_BYTES);
        if (us < best)
            best = us;
    }
    return best;
}

int main(int argc, char **argv)
{
    const char *label = argc > 1 ? argv[1] : "machine speed";
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    double one = loop_best(5);
    double all = loop_all(cores > 0 ? (int)cores : 1);

    printf("| %s | loop %.2f ns/iteration on one core, %.2fx with every core at once; "
           "page fault %.2f µs |\n",
           label, one, all > 0 ? all / one : -1.0, fault_us());
    return 0;
}
