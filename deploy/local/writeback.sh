# writeback.sh - sourced by stack.sh: the machine's dirty-page writeback while the stack
# runs. Needs log() and $var; WB_DIR (default /proc/sys/vm) holds the two knobs, a test
# points it at files of its own.
#   writeback_tune      as root: vm.dirty_background_bytes = KASIR_STACK_DIRTY_BACKGROUND_BYTES
#                       (1 MB), the machine's own pair kept in var/sysctl.saved
#   writeback_restore   puts the machine's pair back, unless someone changed the knob since
#
# Dirty-page writeback in small steps. With the kernel's defaults (background writeback at
# 10 % of RAM, pages expire after 30 s) nothing is written until a file's pages expire, and
# then the whole file goes at once: every ~30 s the flusher sent 100-300 MB of Kafka
# segments and logs to the disk in ~200 ms, and PostgreSQL's WAL fsync waited behind it.
# Every commit stalled 90-200 ms (measured: docs/BENCHMARKS.md, session 3). Starting
# background writeback at 1 MB of dirty data keeps each burst small: at 8 MB (sessions 3-23)
# the flusher sent ~8-10 MB at once every few seconds and the commits queued behind it
# stalled 20-40 ms, which was the whole p99.9 at 1,000 payments/s (session 24). It is
# a machine-wide setting, so the stack changes it only as root, keeps the old value in
# var/sysctl.saved and puts it back on `down`. A production host running PostgreSQL or a
# broker wants the same (deploy/README.md).
#
# var/sysctl.saved is "BYTES RATIO SET": the machine's pair before the stack touched it, and
# the value the stack wrote. An `up` that finds the knob at SET (an earlier `up` of this
# checkout, perhaps with another KASIR_STACK_DIRTY_BACKGROUND_BYTES) keeps the machine's pair
# and only records the new SET; `down` compares the knob with SET, not with its own setting,
# so an `up` and a `down` with different settings still put the machine's value back. A file
# of two fields is an older checkout's (before session 24), kept only while the knob was at
# its setting: the knob now is taken for its SET.
WB_DIR=${WB_DIR:-/proc/sys/vm}
WB_KNOB="$WB_DIR/dirty_background_bytes"
WB_RATIO="$WB_DIR/dirty_background_ratio"
WB_BYTES=${KASIR_STACK_DIRTY_BACKGROUND_BYTES:-1048576}
WB_SAVED="$var/sysctl.saved"
# Two checkouts on one machine share the knob but not the file: the first `down` puts its
# saved value back while the other stack still runs (its next `up` sets it again), and
# with two different settings the second `up` takes the first one's value for the
# machine's, which its `down` then leaves.
writeback_tune() {
    if [ "$(id -u)" -ne 0 ] || [ ! -w "$WB_KNOB" ]; then
        log "vm.dirty_background_bytes left as it is (not root or not writable): expect WAL fsync stalls under load"
        return 0
    fi
    case "$WB_BYTES" in ''|*[!0-9]*|0*) log "KASIR_STACK_DIRTY_BACKGROUND_BYTES=$WB_BYTES is not a byte count: writeback left as it is"; return 0 ;; esac
    local cur b="" r="" wb_set="" prev=""; cur=$(cat "$WB_KNOB")
    [ -f "$WB_SAVED" ] && read -r prev <"$WB_SAVED" || true
    read -r b r wb_set <<<"$prev" || true
    [ -n "$r" ] || b="" # not a pair: as if there were no file
    if [ -n "$b" ] && [ -z "$wb_set" ]; then
        wb_set=$cur
        prev="$b $r $cur"
        printf '%s\n' "$prev" >"$WB_SAVED"
    fi
    [ "$cur" = "$WB_BYTES" ] && return 0
    # the knob where a stack of this checkout left it: the machine's pair is the saved one;
    # else the machine's value now, whatever an older saved file says (a reboot or an admin
    # may have changed it since)
    if [ -z "$b" ] || [ "$cur" != "$wb_set" ]; then
        b=$cur r=$(cat "$WB_RATIO")
    fi
    printf '%s %s %s\n' "$b" "$r" "$WB_BYTES" >"$WB_SAVED"
    if echo "$WB_BYTES" 2>/dev/null >"$WB_KNOB"; then
        log "vm.dirty_background_bytes=$WB_BYTES (was: bytes $cur; the machine's bytes $b, ratio $r; make down puts them back)"
    else
        # the kernel refused it: the knob is as it was, and so is what down puts back
        if [ -n "$prev" ]; then printf '%s\n' "$prev" >"$WB_SAVED"; else rm -f "$WB_SAVED"; fi
        log "could not set vm.dirty_background_bytes=$WB_BYTES: writeback left as it is"
    fi
}
# Puts back what `up` replaced, unless someone changed the setting since.
writeback_restore() {
    [ -f "$WB_SAVED" ] && [ -w "$WB_KNOB" ] || return 0
    local b="" r="" wb_set=""
    read -r b r wb_set <"$WB_SAVED" || true
    rm -f "$WB_SAVED"
    [ -n "$wb_set" ] || wb_set=$WB_BYTES # an older checkout's file: its `down` compared so
    [ "$(cat "$WB_KNOB")" = "$wb_set" ] || return 0
    # writing one of the pair zeroes the other: the non-zero one is the setting
    case "$b:$r" in
        [1-9]*:*) echo "$b" >"$WB_KNOB" 2>/dev/null || true ;;
        0:[0-9]*) echo "$r" >"$WB_RATIO" 2>/dev/null || true ;;
        *) log "unreadable $WB_SAVED: vm.dirty_background_bytes left at $wb_set" ;;
    esac
}
