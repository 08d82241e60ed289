"""Prometheus metrics of a log (issue 7), in a registry of its own so that several logs
(tests, one process) never mix their counts. Exposed at GET /metrics."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
# RFC 9110 §9 methods (and PATCH): the "method" label's values; any other is "OTHER".
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"))


class LogMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.submissions = Counter(
            "tlog_submissions", "Entry submissions by outcome", ["outcome"], registry=r)
        self.batch_entries = Histogram(
            "tlog_batch_entries", "Entries per committed batch", buckets=_BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram(
            "tlog_batch_commit_seconds", "Time to write and fsync one batch (one transaction)",
            buckets=_LATENCY_BUCKETS, registry=r)
        # The serial part of the write path, stage by stage (BENCHMARKS.md: what one
        # sequencer can integrate); summed per stage, divided by batches, it is the batch.
        self.batch_stage = Histogram(
            "tlog_batch_stage_seconds", "Time of each stage of a batch: drain (on PostgreSQL, the "
            "leader reading pending rows), dedupe, tree (hash and extend), sign (the checkpoint), "
            "store (one transaction, until durable)", ["stage"], buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_failures = Counter(
            "tlog_batch_failures", "Batches that could not be stored", registry=r)
        self.queue_wait = Histogram(
            "tlog_sequencer_wait_seconds", "Time from queueing a submission to its batch being durable",
            buckets=_LATENCY_BUCKETS, registry=r)
        self.tree_size = Gauge("tlog_tree_size", "Entries in the log (latest checkpoint)", registry=r)
        self.checkpoint_time = Gauge(
            "tlog_checkpoint_timestamp_seconds", "Unix time the latest checkpoint was signed", registry=r)
        self.checkpoint_age = Gauge(
            "tlog_checkpoint_age_seconds", "Seconds since the latest checkpoint was signed", registry=r)
        self.checkpoint_age.set_function(lambda: time.time() - self.checkpoint_time._value.get())
        self.pending = Gauge("tlog_sequencer_pending", "Submissions waiting for a batch", registry=r)
        self.requests = Histogram(
            "tlog_http_request_seconds", "HTTP request latency by route", ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS, registry=r)
        self._request_children: dict[tuple[str, str, int], Histogram] = {}
        self.witness_cosignatures = Counter(
            "tlog_witness_cosignatures", "Checkpoint pushes to witnesses by witness and outcome",
            ["witness", "outcome"], registry=r)
        self.signature_checks = Counter(
            "tlog_signature_checks", "Submitted signatures checked, on the event loop (inline) or "
            "on a verification thread (thread: the costly keys)", ["where"], registry=r)
        self.key_cache_bytes = Gauge(
            "tlog_key_cache_bytes", "Bytes held by the cache of parsed signing keys (process-wide)",
            registry=r)
        self.key_cache_keys = Gauge(
            "tlog_key_cache_keys", "Signing keys in the parsed-key cache (process-wide)", registry=r)

        # Several frontends on PostgreSQL (tlog.server.cluster, issue 15).
        self.leader_changes = Counter(
            "tlog_leader_changes", "Times this frontend became the log's sequencer", registry=r)
        self.is_leader = Gauge(
            "tlog_is_leader", "1 while this frontend sequences the log (holds the lock)", registry=r)

    def request_done(self, route: str, method: str, status: int, seconds: float) -> None:
        """Observe one HTTP request. The labelled child is looked up once per (route,
        method, status) and kept: `labels()` validates and locks on every call, a few µs
        of every request (issue 16). Methods beyond HTTP's own are counted as "OTHER", so
        a client cannot add a time series per request (the route is the matched resource,
        the status one the server chose: both already bounded)."""
        key = (route, method if method in _METHODS else "OTHER", status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(key[0], key[1], str(status))
        child.observe(seconds)

    def batch_committed(self, entries: int, seconds: float, tree_size: int) -> None:
        self.batch_entries.observe(entries)
        self.batch_seconds.observe(seconds)
        self.tree_size.set(tree_size)
        self.checkpoint_time.set(time.time())
