#!/bin/bash
# The replica's entrypoint (postgres image, as the postgres user): on first start, a base
# backup of the primary that writes standby.signal and primary_conninfo (-R); then a hot standby.
set -euo pipefail
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_basebackup -h primary -U wikigraph -D "$PGDATA" -R -X stream -c fast; do
    echo "replica: waiting for the primary"
    rm -rf "${PGDATA:?}"/*
    sleep 1
  done
  chmod 700 "$PGDATA"
fi
exec postgres -c hot_standby=on
