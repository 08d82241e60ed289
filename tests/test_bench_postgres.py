"""`tlog bench --database --frontends N` (issue 15): a run on a throw-away PostgreSQL with
the load spread over N `tlog serve` frontends, and the sequencer's per-stage batch times."""

from __future__ import annotations

import json

from .cli_support import json_out, tlog


def test_a_run_on_postgres_with_two_frontends() -> None:
    result = json_out(tlog("bench", "--database", "--frontends", "2", "-n", "8", "--reads", "4",
                           "-c", "4", "--no-calibrate", "--json"))
    assert result["frontends"] == 2 and len(set(result["log"])) == 2
    assert result["runs"]["submit"]["ok"] == 8 and result["tree_size"] == 8
    assert result["runs"]["proof-uuid"]["ok"] == 4 and not result["runs"]["proof-uuid"]["errors"]
    # Two frontends share the requests: the first one's CPU is not the run's, so none is given.
    assert not any("server_cpu_us" in run for run in result["runs"].values())
    batches = result["leader_batches"]
    assert batches["frontend"] in result["log"] and batches["batches"] >= 1
    assert set(batches["stage_ms_per_batch"]) == {"drain", "dedupe", "tree", "sign", "store"}


def test_frontends_need_a_database() -> None:
    r = tlog("bench", "--frontends", "2", "--json")
    assert r.exit_code == 2 and json.loads(r.stdout)["error"]["code"] == "usage", r.stdout
