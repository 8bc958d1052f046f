"""A flow run on JSON-lines files, as the flow tests do it: write the input,
run the flow to the end of the file, read back every output file."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable

import msgspec
from bytewax.dataflow import Dataflow
from bytewax.testing import run_main

OUTPUTS = ("output", "late_output", "error_output")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file, each line parsed strictly (RFC 8259:
    no `NaN`/`Infinity`, no lone surrogates, UTF-8), so every flow test also
    checks its outputs are strict JSON; none if the flow never wrote it."""
    return [msgspec.json.decode(x) for x in path.read_bytes().splitlines()] if path.exists() else []


def output_multisets(run_dir: Path, input_name: str, drop: Iterable[str] = ()) -> dict[str, Counter[str]]:
    """Every JSON-lines file in `run_dir` but the input, as a multiset of its
    records (canonical JSON) without the fields in `drop`: for comparing two
    runs whose output order may differ."""
    out: dict[str, Counter[str]] = {}
    for path in sorted(run_dir.glob("*.jsonl")):
        if path.name == input_name:
            continue
        records = read_jsonl(path)
        for r in records:
            for name in drop:
                r.pop(name, None)
        out[path.name] = Counter(json.dumps(r, sort_keys=True) for r in records)
    return out


def run_on_files(
    build: Callable[..., Dataflow],
    tmp_path: Path,
    lines: Iterable[str],
    outputs: Iterable[str] = OUTPUTS,
    **overrides: Any,
) -> dict[str, list[dict[str, Any]]]:
    """`build(input_path=..., <name>_path=... for each output, **overrides)`
    run over `lines`; the records of each output by name."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "input.jsonl"
    source.write_text("".join(line + "\n" for line in lines))
    paths = {name: tmp_path / f"{name}.jsonl" for name in outputs}
    run_main(build(input_path=str(source), **{f"{n}_path": str(p) for n, p in paths.items()}, **overrides))
    return {name: read_jsonl(p) for name, p in paths.items()}
