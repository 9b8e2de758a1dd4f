# roles.sh - sourced by deploy/local/services.sh and the benches (tests/bench): the one rule of
# which PostgreSQL role a daemon connects as (migration 952, deploy/README.md "Roles"):
# kasir-X as kasir_X, the stack's DSN with its user replaced (tests/integration/conftest.py
# daemon_dsn is the same rule for the tests).
#   daemon_dsn NAME [DSN]   prints DSN (default: $KASIR_PG_DSN) with user=kasir_NAME; fails
#                           (status 1, a line on stderr) for a DSN that names no user=, a URI
#                           or one that leaves the user to PGUSER: the daemon would connect as
#                           whoever that is, the owner perhaps, instead of its own role
daemon_dsn() {
    local dsn=${2-$KASIR_PG_DSN}
    case " $dsn" in
    *" user="*) sed -E "s/(^| )user=[^ ]*/\1user=kasir_$1/g" <<<"$dsn" ;;
    *) echo "daemon_dsn: the DSN names no user=: kasir-$1 cannot be given its own role" >&2
       return 1 ;;
    esac
}
