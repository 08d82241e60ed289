"""What a log's data directory holds: the names the server, `tlog fsck` and backups share.

Kept apart from the log service so that offline tools (tlog.server.fsck) can name the files
without importing the server, its sequencer and its HTTP dependencies.
"""

from __future__ import annotations

KEY_FILE = "log.key"  # the log's private key, PEM, mode 0600 (created on first start)
DB_FILE = "log.db"  # the SQLite driver's database (tlog.server.storage.sqlite), with its WAL
ATTESTATIONS_DIR = "attestations"  # kept DSSE envelopes and payloads (tlog.server.attestations)
# Also there: tlog.files.LOCK_FILE, locked by the process serving the directory and holding
# its PID. Not the log's data: a backup need not copy it, a restore need not bring it.
