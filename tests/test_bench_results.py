"""A filtered `make bench` keeps the latest rows of the cases it did not run,
so `benchmarks/results/latest.md` always holds one dated row per case."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.harness import CASES, machine
from benchmarks.run import _with_earlier


def _row(name: str, date: str) -> dict:
    return {"name": name, "events_per_s": 1.0, "date": date}


def test_a_filtered_run_replaces_its_rows_and_keeps_the_others(tmp_path: Path) -> None:
    first, second, third = list(CASES)[:3]
    saved = tmp_path / "latest.json"
    saved.write_text(json.dumps({"machine": machine(), "results": {
        third: _row(third, "2026-01-01"),
        second: _row(second, "2026-01-01"),
        "a_case_since_removed": _row("a_case_since_removed", "2026-01-01"),
    }}))
    merged = _with_earlier(saved, {second: _row(second, "2026-02-02"), first: _row(first, "2026-02-02")})
    assert list(merged) == [first, second, third]
    assert [r["date"] for r in merged.values()] == ["2026-02-02", "2026-02-02", "2026-01-01"]


def test_rows_from_another_machine_or_without_a_date_are_dropped(tmp_path: Path) -> None:
    first, second = list(CASES)[:2]
    saved = tmp_path / "latest.json"
    saved.write_text(json.dumps({"machine": "another machine", "results": {first: _row(first, "2026-01-01")}}))
    assert _with_earlier(saved, {}) == {}
    saved.write_text(json.dumps({"machine": machine(), "results": {first: {"name": first}}}))
    assert _with_earlier(saved, {second: _row(second, "2026-02-02")}) == {second: _row(second, "2026-02-02")}
    assert _with_earlier(tmp_path / "missing.json", {}) == {}
