# Sourced by the benches: CPU time of processes, in clock ticks (getconf CLK_TCK a second).
# ticks PID...      user + system time of the given processes (absent ones count 0)
# pg_ticks          the stack's PostgreSQL: the postmaster, its live children, and the
#                   children that exited (the postmaster's cutime + cstime: a backend that
#                   ends during a run still counts)
ticks() {
    local t=0 p v
    for p in "$@"; do
        # a process that ends between the test and the read counts 0, as an absent one
        [ -r "/proc/$p/stat" ] || continue
        v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
pg_ticks() {
    local pm t c
    pm=$(head -1 "$(readlink -f "$top/var/pg")/data/postmaster.pid")
    t=$(sed 's/^.*) //' "/proc/$pm/stat" | awk '{print $12 + $13 + $14 + $15}')
    for c in $(pgrep -P "$pm"); do t=$((t + $(ticks "$c"))); done
    echo "$t"
}
