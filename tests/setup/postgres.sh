#!/bin/sh
# Installs PostgreSQL's server binaries (initdb, pg_ctl, postgres) when missing, for the
# tests and `make bench` on PostgreSQL (tests/pg_support.py). Idempotent; needs root to install.
# Debian's postgresql-15 where the release has it, else its default `postgresql`. The tests
# run their own throw-away cluster: the packaged service is not needed, nor started.
set -eu
for bin in /usr/lib/postgresql/*/bin/initdb; do
    [ -x "$bin" ] && exit 0
done
if [ "$(id -u)" != 0 ]; then
    echo "tests/setup/postgres.sh: need root to install PostgreSQL" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends postgresql-15 \
    || apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends postgresql
