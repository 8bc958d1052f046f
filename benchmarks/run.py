"""`make bench`: run every registered benchmark, print a table, write JSON.

    python -m benchmarks.run               # all cases
    python -m benchmarks.run sessions      # cases whose name contains "sessions"

`benchmarks/results/latest.json` and `latest.md` hold the latest result of
every case measured on this machine: a filtered run replaces the rows it ran
and keeps the others, each row dated; results from another machine are
dropped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import benchmarks.suite  # noqa: F401  (registers the cases)
from benchmarks.harness import CASES, Result, machine, measure


def main(argv: list[str]) -> None:
    if any(a.startswith("-") for a in argv):
        raise SystemExit(f"{__doc__}\ncases:\n" + "\n".join(f"    {n}" for n in CASES))
    wanted = [n for n in CASES if not argv or any(a in n for a in argv)]
    if not wanted:
        raise SystemExit(f"no benchmark name contains any of {argv}; `python -m benchmarks.run --help` lists them")
    results = {}
    failed: dict[str, str] = {}
    for name in wanted:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            results[name] = {**measure(name), "date": time.strftime("%Y-%m-%d")}
        except (RuntimeError, subprocess.TimeoutExpired) as ex:
            # One broken case must not throw away an hour of results.
            failed[name] = str(ex)
            print(f"{name} FAILED: {ex}", file=sys.stderr, flush=True)
    rows = [
        "| benchmark | what was run | events/s (median) | runs | peak RSS MB | ratio | date |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    out = Path("benchmarks/results")
    results = _with_earlier(out / "latest.json", results)
    for name, r in results.items():
        base = CASES[name].baseline
        ratio = ""
        if base and base in results:
            ratio = f"{r['events_per_s'] / results[base]['events_per_s']:.3g}x vs {base}"
        extra = "".join(f"; {k}={v}" for k, v in r.items() if k.startswith("x_"))
        rows.append(
            f"| {name} | {r['what']}{extra} | {r['events_per_s']:,.0f} | {r['runs']} | {r['peak_rss_mb']:,.0f} | {ratio} "
            f"| {r['date']} |"
        )
    table = "\n".join(rows)
    header = f"Machine: {machine()}. Command: `make bench` (`make bench BENCH=<filter>` for some rows)."
    print(header)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps({"machine": machine(), "results": results, "failed": failed}, indent=2))
    (out / "latest.md").write_text(header + "\n\n" + table + "\n")
    if failed:
        raise SystemExit(f"{len(failed)} benchmark(s) failed: {', '.join(failed)}")


def _with_earlier(path: Path, results: dict[str, Result]) -> dict[str, Result]:
    """`results` over the earlier latest results of this machine's cases, in
    registration order."""
    earlier: dict[str, Result] = {}
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("machine") == machine():
            earlier = {k: v for k, v in saved.get("results", {}).items() if k in CASES and "date" in v}
    merged = {**earlier, **results}
    return {name: merged[name] for name in CASES if name in merged}


if __name__ == "__main__":
    main(sys.argv[1:])
