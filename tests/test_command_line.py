"""What a person meets first: settings errors that name the variable, the
`python -m flows` command line, the README's generated parts, flow modules
that do nothing when imported, progress lines, exactly_once's refusal to run
without recovery."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from eventio import generators
from eventio.broker import EmbeddedBroker
from eventio.settings import SettingsError
from flows import FLOWS
from flows.__main__ import README, readme
from tests.flow_runs import ROOT, run_flow


def _python(args: list[str], env: dict[str, str], cwd: Path = ROOT, timeout_s: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env={**os.environ, "PYTHONPATH": str(ROOT), **env}, cwd=cwd,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout_s)


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    generators.write_records(generators.sessions(300, seed=3, users=20), str(path), None, "")
    return path


@pytest.fixture
def port_in_use():
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        yield str(s.getsockname()[1])


@pytest.mark.parametrize("variable, value, expected", [
    ("WATERMARK_BOUND_MS", "abc", "WATERMARK_BOUND_MS='abc': expected a non-negative integer number of milliseconds"),
    ("WATERMARK_BOUND_MS", "-5", "WATERMARK_BOUND_MS='-5': expected a non-negative integer number of milliseconds"),
    ("ALLOWED_LATENESS_MS", "1.5", "ALLOWED_LATENESS_MS='1.5': expected a non-negative integer number of milliseconds"),
    ("SHARDS", "0", "SHARDS='0': expected a positive integer"),
    ("METRICS_PORT", "abc", "METRICS_PORT='abc': expected an integer from 1 to 65535"),
    ("METRICS_PORT", "in use", "METRICS_PORT={port}: cannot listen on 0.0.0.0:{port}: Address already in use"),
    ("STOP_AT_END", "maybe", "STOP_AT_END='maybe': expected true or false (also 1/0, yes/no, on/off)"),
    ("START_OFFSET", "middle", "START_OFFSET='middle': expected earliest, latest, committed, committed:earliest, "
                               "committed:latest or timestamp:<epoch milliseconds or ISO-8601 time with a UTC offset>"),
    ("INPUT_TOPIC_PATTERN", "(", "INPUT_TOPIC_PATTERN='(': expected a regular expression (missing ), unterminated "
                                 "subpattern at position 0)"),
    ("INPUT_PATH", "missing.jsonl", "INPUT_PATH='{tmp}/missing.jsonl': no such file"),
])
def test_a_bad_setting_stops_the_run_with_exit_2_and_one_line_naming_it(
        variable: str, value: str, expected: str, events_file: Path, port_in_use: str, tmp_path: Path) -> None:
    value = port_in_use if value == "in use" else str(tmp_path / value) if variable == "INPUT_PATH" else value
    env = {"INPUT_PATH": str(events_file), "OUTPUT_PATH": str(tmp_path / "out.jsonl"), variable: value}
    run = run_flow("flows.session_analytics:flow", env, timeout_s=60)
    assert run.status == 2, run.output
    assert "Traceback" not in run.output and "panicked" not in run.output, run.output
    assert run.output.strip().splitlines() == [
        "flows.session_analytics: " + expected.format(port=port_in_use, tmp=tmp_path)
        + (f": {tmp_path}/missing.jsonl" if variable == "INPUT_PATH" else "")], run.output
    assert not (tmp_path / "out.jsonl").exists()


def test_every_problem_is_reported_at_once() -> None:
    from flows import fraud_detection

    with pytest.raises(SettingsError) as caught:
        fraud_detection.build(shard=4, watermark_bound_ms="5", within_ms=0)
    assert caught.value.problems == [
        "fraud_detection: unknown setting 'shard'; did you mean 'shards'?",
        "within_ms=0: expected a positive integer number of milliseconds",
        "watermark_bound_ms='5': expected a non-negative integer number of milliseconds",
    ]


def test_importing_a_flow_module_reads_no_variable_opens_no_port_and_builds_nothing() -> None:
    probe = f"""
import os, socket, sys, threading
import bytewax.operators, bytewax.dataflow, confluent_kafka, prometheus_client, msgspec  # their own imports aside
read = []
ours = tuple(os.path.join({str(ROOT)!r}, package) for package in ("eventio", "flows", "operators", "recovery"))
class Recording(type(os.environ)):
    def __getitem__(self, key):
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.endswith(("os.py", "_collections_abc.py")):
            frame = frame.f_back
        if frame is not None and frame.f_code.co_filename.startswith(ours):
            read.append((key, frame.f_code.co_filename))
        return super().__getitem__(key)
recording = Recording(os.environ._data, os.environ.encodekey, os.environ.decodekey, os.environ.encodevalue,
                      os.environ.decodevalue)
os.environ = recording
opened = []
real_bind = socket.socket.bind
socket.socket.bind = lambda self, address: (opened.append(address), real_bind(self, address))[1]
threads = threading.active_count()
import importlib
for name in {list(FLOWS)!r}:
    module = importlib.import_module("flows." + name)
    assert "flow" not in vars(module), name
os.environ = recording.copy()
print(read, opened, threading.active_count() - threads)
"""
    done = _python(["-c", probe], {"METRICS_PORT": "0", "INPUT_PATH": "/nonexistent"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "[]", "0"]


def test_the_flow_attribute_is_built_on_first_access_and_kept(events_file: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.count_or_timeout as module

    monkeypatch.delitem(vars(module), "flow", raising=False)
    monkeypatch.setenv("INPUT_PATH", str(events_file))
    monkeypatch.setenv("OUTPUT_PATH", str(tmp_path / "out.jsonl"))
    first = module.flow
    assert first.flow_id == "count_or_timeout" and module.flow is first
    with pytest.raises(AttributeError, match="no attribute 'flows'"):
        module.flows  # noqa: B018


def test_list_names_every_flow_on_one_line() -> None:
    done = _python(["-m", "flows", "list"], {})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(FLOWS)
    assert all(len(line.split()) > 3 for line in lines)


def test_describe_shows_the_commands_the_settings_and_a_record() -> None:
    from flows import multi_output

    done = _python(["-m", "flows", "describe", "multi_output"], {})
    assert done.returncode == 0, done.stderr
    for setting in multi_output.SETTINGS:
        assert f"  {setting.name} (default " in done.stdout
    assert "python -m eventio.generators mixed" in done.stdout
    assert json.dumps(multi_output.EXAMPLE_OUTPUT) in done.stdout
    unknown = _python(["-m", "flows", "describe", "session_analytic"], {})
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == ("flows: unknown flow 'session_analytic'; did you mean session_analytics or "
                                      "realtime_analytics? (python -m flows list)")


def test_check_prints_the_resolved_settings_with_secrets_masked(events_file: Path, tmp_path: Path) -> None:
    env = {"INPUT_PATH": str(events_file), "OUTPUT_PATH": str(tmp_path / "out.jsonl"), "SHARDS": "8",
           "KAFKA_PROPERTY_SASL_PASSWORD": "hunter2-secret", "WITHIN_MS": "60000"}
    done = _python(["-m", "flows", "check", "fraud_detection"], env)
    assert done.returncode == 0, done.stderr
    rows = dict(re.findall(r"^  (\S+) +(.*)$", done.stdout, re.M))
    assert rows["SHARDS"] == "8" and rows["WITHIN_MS"] == "60000" and rows["INPUT_PATH"] == str(events_file)
    assert rows["KAFKA_PROPERTY_<NAME>"] == "sasl.password=***"
    assert "hunter2" not in done.stdout + done.stderr
    bad = _python(["-m", "flows", "check", "fraud_detection"], {**env, "AMOUNT_THRESHOLD": "lots"})
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == "flows: AMOUNT_THRESHOLD='lots': expected a non-negative number"


def test_the_readme_tables_and_quickstarts_are_the_generated_ones() -> None:
    text = README.read_text()
    assert readme(text) == text, "run `python -m flows readme` and commit README.md"
    assert all(f"<!-- generated: flow {name} -->" in text for name in FLOWS)


@pytest.mark.parametrize("name", [name for name in FLOWS if name != "exactly_once"])
def test_each_quickstart_on_files_runs_and_writes_records_like_the_example(name: str, tmp_path: Path) -> None:
    """The README's commands, as a user pastes them (fewer events)."""
    from flows.__main__ import load

    module = load(name)
    generate, run = module.QUICKSTART.commands(name)[1:3]
    made = _python(generate.replace("--count 20000", "--count 3000").split()[1:], {}, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    *assignments, _interpreter, _m, _bytewax_run, target = run.split()
    env = dict(a.split("=", 1) for a in assignments)
    ran = _python(["-m", "bytewax.run", target], env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    optional = {"category", "region", "tenant_id", "location", "device_id", "user_type", "amount", "value",
                "failed_attempts"}  # event fields the flows that write events carry when the event has them
    assert any(record.keys() == module.EXAMPLE_OUTPUT.keys() for record in records)
    assert all(record.keys() - optional == module.EXAMPLE_OUTPUT.keys() - optional for record in records)
    summary = ran.stderr.strip().splitlines()[-1]
    assert summary.startswith(f"{name}: done in ") and f" {len(records):,} results," in summary, ran.stderr


def test_progress_summary_counts_what_was_read_and_written_and_quiet_silences_it(tmp_path: Path) -> None:
    events = list(generators.disorder(generators.sessions(2000, seed=5, users=40), seed=5, late_fraction=0.05))
    lines = [json.dumps(e) for e in events] + ["{not json", '{"event_id": "x"}']
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    env = {"INPUT_PATH": str(tmp_path / "in.jsonl"), "OUTPUT_PATH": str(tmp_path / "out.jsonl")}
    run = run_flow("flows.session_analytics:flow", env)
    assert run.status == 0, run.output
    out = tmp_path / "out.jsonl"
    results = len(out.read_text().splitlines())
    late = len((tmp_path / "out.late.jsonl").read_text().splitlines())
    dead = len((tmp_path / "out.dlq.jsonl").read_text().splitlines())
    assert late > 0 and dead == 2
    summary = run.output.strip().splitlines()[-1]
    assert re.fullmatch(rf"session_analytics: done in [\d.]+ s: {len(events):,} events in, {results:,} results, "
                        rf"{late:,} late, {dead:,} dead letters, [\d,]+ events/s", summary), run.output
    out.unlink()
    quiet = run_flow("flows.session_analytics:flow", {**env, "QUIET": "true", "OUTPUT_PATH": str(tmp_path / "q.jsonl")})
    assert quiet.status == 0 and quiet.output.strip() == "", quiet.output


def test_exactly_once_refuses_to_run_without_recovery(tmp_path: Path) -> None:
    run = run_flow("flows.exactly_once:flow", {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert run.status == 2, run.output
    assert "Traceback" not in run.output
    assert run.output.strip().splitlines() == [
        "flows.exactly_once: exactly-once output needs Bytewax recovery (-r); make the recovery directories and "
        "run it with them:",
        "  python -m recovery.directories init state/ 1",
        "  python -m bytewax.run flows.exactly_once:flow -r state/ -s 1 -b 0",
    ]


@pytest.mark.integration
@pytest.mark.parametrize("name", ["session_analytics", "exactly_once"])
def test_the_kafka_quickstart_runs_on_a_broker(name: str, tmp_path: Path) -> None:
    """The README's Kafka commands, on a broker of their own (they use the
    default topic names)."""
    from flows import BROKER
    from flows.__main__ import load
    from tests.committed_log import read_committed
    from tests.topic_reader import read_all

    module = load(name)
    lines = module.QUICKSTART.commands(name)
    generate, run = lines[lines.index(next(line for line in lines if "on Kafka" in line)) + 1:]
    with EmbeddedBroker() as broker:
        broker.create_topics({"events": 2, "results": 2, "dlq": 1, "late-events": 1})
        for command in (generate, run):
            shell = command.replace(BROKER, broker.bootstrap_servers).replace("python -m", f"{sys.executable} -m")
            done = subprocess.run(["bash", "-c", shell], cwd=tmp_path, capture_output=True, text=True, timeout=180,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
            assert done.returncode == 0, (shell, done.stderr[-3000:])
        values = ([r.value for r in read_committed(broker.bootstrap_servers, "results")] if name == "exactly_once"
                  else [r.value for r in read_all(broker.bootstrap_servers, "results")])
    records = [json.loads(v) for v in values if v]
    assert records and all(r.keys() == module.EXAMPLE_OUTPUT.keys() for r in records)
    if name == "exactly_once":
        assert len(records) == 20000  # one per input event, each committed once
