#!/bin/sh
# Install the headless browser tests/test_explorer.py drives: Debian's chromium and
# chromium-driver. Idempotent: does nothing when both are there. Needs root (CI runs as root);
# apt's package lists are refreshed only if the first install fails.
set -eu
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "chromium and chromium-driver are missing: run $0 as root (apt-get install)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends chromium chromium-driver \
    || { apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver; }
