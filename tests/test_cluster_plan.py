"""`eventio.cluster`: the options of `flows run --processes`, the command
lines and the recovery partitions spread over the processes' directories."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventio import cluster


def _layout(root: Path) -> dict[str, list[str]]:
    """Directory (relative to `root`) -> partition files in it."""
    return {str(d.relative_to(root)): sorted(p.name for p in d.iterdir() if p.is_file())
            for d in sorted([root, *root.glob("process-*")])}


def test_options_without_processes_are_a_plain_bytewax_run() -> None:
    assert cluster.split_options(["-w", "2", "-r", "state/", "-s", "1", "-b", "0"]) is None


def test_options_are_split_into_the_runners_and_bytewaxs() -> None:
    planned = cluster.split_options(["--processes", "3", "-w", "2", "-r", "state", "--snapshot-interval=5",
                                     "-b", "0", "--recovery-parts=6"])
    assert planned == cluster.RunOptions(3, Path("state"), 6, ["-w", "2", "--snapshot-interval", "5", "-b", "0"])


@pytest.mark.parametrize(("options", "message"), [
    (["--processes", "2", "-i", "0"], "chosen by --processes"),
    (["--processes", "2", "-a", "x"], "chosen by --processes"),
    (["--processes", "0"], ">= 1"),
    (["--processes", "two"], "integer"),
    (["--processes"], "needs a value"),
    (["--processes", "2", "--bogus"], "unknown option"),
    (["--recovery-parts", "4"], "needs --processes"),
])
def test_bad_options_are_refused(options: list[str], message: str) -> None:
    with pytest.raises(cluster.ClusterError, match=message):
        cluster.split_options(options)


def test_every_process_gets_its_id_all_addresses_and_its_directory() -> None:
    commands = cluster.bytewax_commands("flows.x:flow", ["-s", "1"], [7001, 7002], [Path("r/process-0"),
                                        Path("r/process-1")], "py")
    assert commands == [
        ["py", "-m", "eventio.run", "flows.x:flow", "-s", "1", "-i", str(k), "-a",
         "127.0.0.1:7001;127.0.0.1:7002", "-r", f"r/process-{k}"] for k in range(2)]


def test_exit_status_of_a_signalled_process_is_128_plus_the_signal() -> None:
    assert cluster.exit_status(-signal.SIGKILL) == 137
    assert cluster.exit_status(3) == 3


def test_first_start_spreads_the_partitions_and_a_rescale_moves_them(tmp_path: Path) -> None:
    root = tmp_path / "state"
    dirs = cluster.prepare_recovery(root, 2, 5, cluster.init_parts)
    assert dirs == [root / "process-0", root / "process-1"]
    assert _layout(root) == {".": [], "process-0": ["part-0.sqlite3", "part-2.sqlite3", "part-4.sqlite3"],
                             "process-1": ["part-1.sqlite3", "part-3.sqlite3"]}
    (root / "process-1/part-3.sqlite3-wal").write_bytes(b"wal")
    cluster.prepare_recovery(root, 1, 99, cluster.init_parts)
    assert _layout(root) == {".": [], "process-0": sorted([f"part-{k}.sqlite3" for k in range(5)] + ["part-3.sqlite3-wal"]),
                             "process-1": []}
    assert (root / "process-0/part-3.sqlite3-wal").read_bytes() == b"wal", "a sidecar moves with its database"
    cluster.prepare_recovery(root, 3, 1, cluster.init_parts)
    assert _layout(root)["process-2"] == ["part-2.sqlite3"]


def test_a_plain_bytewax_store_is_adopted(tmp_path: Path) -> None:
    cluster.init_parts(tmp_path, 2)
    cluster.prepare_recovery(tmp_path, 2, 1, cluster.init_parts)
    assert _layout(tmp_path) == {".": [], "process-0": ["part-0.sqlite3"], "process-1": ["part-1.sqlite3"]}


def test_a_crash_between_a_sidecar_and_its_database_is_finished_next_time(tmp_path: Path) -> None:
    cluster.prepare_recovery(tmp_path, 1, 2, cluster.init_parts)
    (tmp_path / "process-1").mkdir()
    (tmp_path / "process-1/part-1.sqlite3-wal").write_bytes(b"wal")  # moved ahead; the database did not follow
    assert cluster.redistribution(tmp_path, 2) == [
        cluster.Move(tmp_path / "process-0/part-1.sqlite3", tmp_path / "process-1/part-1.sqlite3")]


def test_missing_or_doubled_partitions_are_refused(tmp_path: Path) -> None:
    cluster.prepare_recovery(tmp_path, 2, 3, cluster.init_parts)
    os.link(tmp_path / "process-0/part-0.sqlite3", tmp_path / "process-1/part-0.sqlite3")
    with pytest.raises(cluster.ClusterError, match="partition 0 is in .*process-0, .*process-1"):
        cluster.prepare_recovery(tmp_path, 1, 3, cluster.init_parts)
    (tmp_path / "process-1/part-0.sqlite3").unlink()
    (tmp_path / "process-1/part-1.sqlite3").unlink()
    with pytest.raises(cluster.ClusterError, match=r"partitions \[1\] are missing"):
        cluster.prepare_recovery(tmp_path, 1, 3, cluster.init_parts)


def _empty_parts(directory: Path, parts: int) -> None:
    """Partition files without content (the planning only moves files)."""
    for k in range(parts):
        (directory / f"part-{k}.sqlite3").touch()


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 12), st.lists(st.integers(1, 5), min_size=1, max_size=4))
def test_partitions_stay_once_each_with_their_owner(parts: int, counts: list[int]) -> None:
    """Any sequence of process counts: every partition once, with `p % N`."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in counts:
            cluster.prepare_recovery(root, n, parts, _empty_parts)
            found = cluster.partition_files(root)
            assert sorted(found) == list(range(parts))
            assert all(paths == [cluster.process_directory(root, p % n) / f"part-{p}.sqlite3"]
                       for p, paths in found.items())


def test_output_files_are_one_per_part_written_by_its_process() -> None:
    layout = cluster.OutputLayout(process=1, processes=2, parts=3)
    assert layout.paths("out/results.jsonl") == [f"out/results.part-{p}.jsonl" for p in range(3)]
    assert layout.paths("out.d/results") == [f"out.d/results.part-{p}" for p in range(3)]
    assert (layout.local(), layout.written_to()) == ([1], 1)
    assert cluster.OutputLayout(0, 2, 3).local() == [0, 2]
    assert cluster.OutputLayout(2, 3, 2).written_to() == 0, "a process beyond the parts writes to another's"
    assert cluster.OutputLayout(0, 1, 1).paths("out.jsonl") == ["out.jsonl"]
    assert cluster.OutputLayout.from_env(layout.env()) == layout
    assert cluster.OutputLayout.from_env({}) is None


def test_a_batch_keyed_with_a_part_reaches_that_parts_file() -> None:
    """Bytewax indexes `part_fn` into the sorted partitions of the cluster
    (`part-10` sorts before `part-2`)."""
    from eventio.flowio import JsonLinesSink

    paths = cluster.OutputLayout(0, 1, 12).paths("out.jsonl")
    sink = JsonLinesSink(paths, [0, 5])
    assert sink.list_parts() == ["out.part-0.jsonl", "out.part-5.jsonl"]
    assert all(sorted(paths)[sink.part_fn(str(p))] == paths[p] for p in range(12))
