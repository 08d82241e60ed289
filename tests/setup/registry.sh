#!/bin/sh
# Installs what tests/test_registry.py needs when it is missing (idempotent; CI runs as root):
# Debian's docker-registry (the CNCF distribution registry), skopeo to push OCI layouts, and
# apache2-utils for htpasswd.
set -eu
missing=""
command -v docker-registry >/dev/null 2>&1 || [ -x /usr/bin/docker-registry ] || missing="$missing docker-registry"
command -v skopeo >/dev/null 2>&1 || missing="$missing skopeo"
command -v htpasswd >/dev/null 2>&1 || missing="$missing apache2-utils"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "tests/setup/registry.sh: need root to install:$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Another apt may hold the lock (a parallel job): wait for it rather than fail.
apt-get -o DPkg::Lock::Timeout=600 update -qq
# shellcheck disable=SC2086
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing
