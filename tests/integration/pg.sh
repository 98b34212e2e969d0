# pg.sh: a throwaway PostgreSQL server for the integration tests (sourced after lib.sh).
# Installs Debian's postgresql when missing, runs initdb as the postgres user in a mktemp -d
# directory, listens on 127.0.0.1 on a random port with its own socket directory, creates the
# role and database `certprov`, and removes everything at exit. pg_stop / pg_start stop and
# start the same server mid-test. Sets PG_URL (for [pool.NAME] store =) and PG_PSQL (psql args).
pg_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && { echo "$d"; return 0; }; done
    return 1
}
PG_BINDIR=$(pg_bin) || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null 2>&1
    PG_BINDIR=$(pg_bin) || { echo "pg.sh: cannot install PostgreSQL" >&2; exit 1; }
}
PG_DIR=$(mktemp -d /tmp/certprov-pg-XXXXXX)
chown postgres "$PG_DIR"
PG_PORT=$((40000 + RANDOM % 20000))
pg_as() { runuser -u postgres -- "$@"; }
pg_start() {
    pg_as "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 30 \
        -o "-k $PG_DIR -h 127.0.0.1 -p $PG_PORT -c fsync=off" start >/dev/null
}
pg_stop() { pg_as "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null; }
pg_cleanup() { pg_stop 2>/dev/null; rm -rf "$PG_DIR"; }
# Until the test sets its own trap (which must call pg_cleanup), a failed setup cleans up too.
trap 'pg_cleanup; rm -rf "${T:-}"' EXIT
pg_as "$PG_BINDIR/initdb" -D "$PG_DIR/data" -A trust -U postgres >/dev/null || { echo "pg.sh: initdb failed" >&2; exit 1; }
# A random port may be taken by something else: try a few.
for _ in 1 2 3 4 5; do
    pg_start && break
    PG_PORT=$((40000 + RANDOM % 20000))
done
pg_as "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" status >/dev/null ||
    { echo "pg.sh: the server did not start: $(tail -3 "$PG_DIR/log")" >&2; exit 1; }
PG_PSQL=(-h 127.0.0.1 -p "$PG_PORT" -U certprov -d certprov -X -q -A -t)
pg_as psql -h "$PG_DIR" -p "$PG_PORT" -U postgres -X -q -c "CREATE ROLE certprov LOGIN" \
    -c "CREATE DATABASE certprov OWNER certprov" >/dev/null
PG_URL="postgresql://certprov@127.0.0.1:$PG_PORT/certprov"
# psql_q SQL: one query against the test database, unaligned, tuples only.
psql_q() { psql "${PG_PSQL[@]}" -c "$1"; }
