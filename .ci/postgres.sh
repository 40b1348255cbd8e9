#!/usr/bin/env bash
# Install (from Debian's packages), start and prepare the PostgreSQL the tests use:
# database `test`, role `postgres`, trust authentication on 127.0.0.1 and ::1 only.
# Idempotent: each step is skipped when already done. Needs root (apt-get, pg_ctlcluster).
set -euo pipefail

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
  echo "postgres: installing from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

version=$(ls /etc/postgresql | sort -V | tail -n 1)
hba=/etc/postgresql/$version/main/pg_hba.conf
if ! grep -q '^# wirestream tests' "$hba"; then
  # Prepend: the first matching line wins, so these must precede Debian's defaults.
  { printf '# wirestream tests: trust on loopback TCP only\n'
    printf 'host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n'
    cat "$hba"; } > "$hba.new"
  mv "$hba.new" "$hba"
  chown postgres:postgres "$hba"
  pg_ctlcluster --skip-systemctl-redirect "$version" main reload 2>/dev/null || true
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432

if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -qc 'CREATE DATABASE test'
fi
echo "postgres: ready at postgresql://postgres@127.0.0.1:5432/test (trust on loopback)"
