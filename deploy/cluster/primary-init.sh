#!/bin/bash
# Run once by the postgres image when it initialises the primary: the replica's base backup and
# streaming connect as the wikigraph user (a superuser, so it may replicate) over the network.
set -euo pipefail
echo "host replication wikigraph all scram-sha-256" >>"$PGDATA/pg_hba.conf"
