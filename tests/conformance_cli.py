"""sigstore-conformance's CLI protocol (its docs/cli_protocol.md) mapped onto `tlog verify`.

    verify-bundle [--staging] --bundle FILE (--certificate-identity ID --certificate-oidc-issuer URL
                  | --key PEM) [--trusted-root FILE] FILE_OR_DIGEST

becomes `tlog verify --offline …` with the same options: tlog's names are the suite's.
Run as a script, it is the entrypoint the suite's `--entrypoint` takes.
"""

from __future__ import annotations

import sys


def tlog_args(protocol_args: list[str]) -> list[str]:
    """The `tlog` arguments for one conformance-protocol verify invocation."""
    command, *rest = protocol_args
    if command != "verify-bundle":
        raise SystemExit(f"unsupported conformance command {command!r}")
    if "--staging" in rest:
        raise SystemExit("--staging: give the staging root with --trusted-root")
    return ["verify", "--offline", *rest]


if __name__ == "__main__":
    from cli.main import main

    main(tlog_args(sys.argv[1:]))
