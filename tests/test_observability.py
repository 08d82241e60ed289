"""Metrics scraped and parsed; JSON log lines parsed, with request IDs."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from .support import OpenLog, Signer
from .test_serve import free_port, start, stop, wait_ready


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_count_outcomes_batches_and_requests(open_log: OpenLog) -> None:
    _, client = await open_log(batch_ms=0)
    signer = Signer()
    dup = signer.proposed(b"dup")
    for p in (signer.proposed(), signer.proposed(), dup, dup, {"kind": "nope"}):
        await client.post("/api/v1/log/entries", json=p)
    await client.get("/api/v1/log/entries", params={"logIndex": "0"})
    r = await client.get("/metrics")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    m = _samples(await r.text())
    assert m[("tlog_submissions_total", (("outcome", "created"),))] == 3
    assert m[("tlog_submissions_total", (("outcome", "duplicate"),))] == 1
    assert m[("tlog_submissions_total", (("outcome", "invalid"),))] == 1
    assert m[("tlog_tree_size", ())] == 3
    assert m[("tlog_batch_entries_count", ())] == 3 and m[("tlog_batch_entries_sum", ())] == 3
    assert m[("tlog_batch_commit_seconds_count", ())] == 3
    assert 0 <= m[("tlog_checkpoint_age_seconds", ())] < 60
    assert m[("tlog_sequencer_pending", ())] == 0
    key = ("tlog_http_request_seconds_count",
           (("method", "POST"), ("route", "/api/v1/log/entries"), ("status", "201")))
    assert m[key] == 3
    assert m[("tlog_http_request_seconds_count",
              (("method", "GET"), ("route", "/api/v1/log/entries"), ("status", "200")))] == 1


async def test_json_logs_carry_request_ids(tmp_path: Path) -> None:
    port = free_port()
    proc = start(tmp_path / "d", port, "--log-format", "json")
    await wait_ready(port, proc)
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{port}/api/v1/log/entries", json=Signer().proposed(),
                          headers={"X-Request-ID": "req-42"}) as r:
            assert r.status == 201 and r.headers["X-Request-ID"] == "req-42"
        async with s.get(f"http://127.0.0.1:{port}/api/v1/log", headers={"X-Request-ID": "bad id!"}) as r:
            generated = r.headers["X-Request-ID"]
            assert generated != "bad id!" and len(generated) == 32
    out = stop(proc)
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    assert any(x["logger"] == "tlog" and "serving" in x["message"] for x in lines)
    access = [x for x in lines if x["logger"] == "tlog.access"]
    post = next(x for x in access if x.get("request_id") == "req-42")
    assert post["method"] == "POST" and post["status"] == 201 and post["duration_ms"] > 0
    assert any(x.get("request_id") == generated for x in access)
    # The log key never appears in the logs.
    key = (tmp_path / "d" / "log.key").read_text()
    body = key.split("-----")[2].strip()
    assert body not in out
