#!/usr/bin/env python3
"""Container health check: exit 0 if GET URL answers 200, else 1 with the reason on stderr.

Usage: tlog-healthcheck URL   (e.g. http://127.0.0.1:3000/healthz)

Slim Python images have no curl or wget; this needs only the standard library. Proxy
variables are ignored: the check is always about this container's own port.
"""

from __future__ import annotations

import sys
import urllib.request


def check(url: str, timeout: float = 4.0) -> str | None:
    """None if URL answers 200, else why not."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as answer:
            return None if answer.status == 200 else f"HTTP {answer.status}"
    except (OSError, ValueError) as e:  # URLError and HTTPError are OSErrors
        return str(e)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: tlog-healthcheck URL", file=sys.stderr)
        return 2
    reason = check(argv[1])
    if reason is not None:
        print(f"unhealthy: {argv[1]}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
