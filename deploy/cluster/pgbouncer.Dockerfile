# Debian's pgbouncer (1.18 in bookworm, as make cluster and make test use): transaction mode
# cannot carry server-side prepared statements, hence DB_PREPARED_STATEMENTS=off.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends pgbouncer && rm -rf /var/lib/apt/lists/*
COPY pgbouncer.ini userlist.txt /etc/pgbouncer/
USER postgres
EXPOSE 6432
ENTRYPOINT ["/usr/sbin/pgbouncer", "/etc/pgbouncer/pgbouncer.ini"]
