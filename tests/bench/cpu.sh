# Sourced by the benches: CPU time of processes, in clock ticks (getconf CLK_TCK a second).
# ticks PID...      user + system time of the given processes (absent ones count 0)
# starttime PID     when the process started (ticks after boot; empty when it is gone): a
#                   pid whose start time changed is another process
# pg_ticks          the stack's PostgreSQL: the postmaster, its live children, and the
#                   children that exited (the postmaster's cutime + cstime: a backend that
#                   ends during a run still counts)
# steal             the machine's steal time so far (ticks, /proc/stat): these VMs share
#                   their hosts, and a run in which the hypervisor took CPU time is that
#                   machine's figure, not the program's
# cores_pct T NS    T ticks as a % of every core's time over NS ns (every CPU in /proc/stat,
#                   whatever nproc's mask: each one's steal is counted there)
# calib_loop        how fast a core runs right now: build/bench/calib's loop, ns an
#                   iteration (0.25 on sessions 36-37's machine when its host was quiet,
#                   0.29-0.45 when it was busy; 0.60 was seen between two runs);
#                   empty when the binary is not built
ticks() {
    local t=0 p v
    for p in "$@"; do
        # a process that ends between the test and the read counts 0, as an absent one
        [ -r "/proc/$p/stat" ] || continue
        v=$(stat_fields "$p" '$12 + $13')
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
starttime() { stat_fields "$1" '$20'; }
# stat_fields PID EXPR: awk EXPR over /proc/PID/stat's fields after the command name ($1 is
# the state), nothing when the process is gone
stat_fields() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk "{print $2}"; }
pg_ticks() {
    local pm t c
    pm=$(head -1 "$(readlink -f "$top/var/pg")/data/postmaster.pid")
    t=$(stat_fields "$pm" '$12 + $13 + $14 + $15')
    for c in $(pgrep -P "$pm"); do t=$((t + $(ticks "$c"))); done
    echo "$t"
}
steal() { awk '/^cpu /{print $9}' /proc/stat; }
cores_pct() {
    awk -v d="$1" -v hz="$(getconf CLK_TCK)" -v n="$(grep -c '^cpu[0-9]' /proc/stat)" -v w="$2" \
        'BEGIN { printf "%.1f", 100 * d / (hz * n * w / 1e9) }'
}
calib_loop() { "$top/build/bench/calib" 2>/dev/null | sed -nE 's/.*loop ([0-9.]+) ns.*/\1/p'; }
