#!/usr/bin/env bash
# Make sure the services the test-suite needs are reachable. The Kafka-protocol broker is
# started by the tests themselves (tests/support/broker.py), on a free loopback port.
# PostgreSQL and Redis: use the configured URLs when set; otherwise the local servers,
# started with the machine's own commands when they are installed but stopped.
# When neither is reachable and Docker is available, the test harness falls back to
# testcontainers; otherwise the tests fail with one clear line.
set -u
pg_ok() { python3 - <<'PY'
import socket, sys
try:
    socket.create_connection(("127.0.0.1", 5432), 1).close()
except OSError:
    sys.exit(1)
PY
}
redis_ok() { python3 - <<'PY'
import socket, sys
try:
    socket.create_connection(("127.0.0.1", 6379), 1).close()
except OSError:
    sys.exit(1)
PY
}
if [ -z "${CLASS_MANAGEMENT_SERVICE_TEST_DATABASE_URL:-}" ] && ! pg_ok; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "services: starting the local PostgreSQL cluster" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi
if [ -z "${CLASS_MANAGEMENT_SERVICE_TEST_REDIS_URL:-}" ] && ! redis_ok; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "services: starting a local Redis" >&2
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
  fi
fi
# PgBouncer (Debian's package) for the transaction-mode test of the SQL adapter.
if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ] \
   && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "services: installing pgbouncer (apt-get)" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer) \
    >/dev/null 2>&1 || echo "services: pgbouncer could not be installed" >&2
  # The package starts its own instance on 6432; the tests run a private one instead.
  (service pgbouncer stop || pkill -x pgbouncer) >/dev/null 2>&1 || true
fi
exit 0
