"""The alert rules and the dashboard, checked by a real Prometheus.

`promtool check rules` validates the PrometheusRule's rules; `promtool test
rules` runs tests/prometheus/alerts_test.yaml, in which every alert fires in
a scenario of its own and stays silent in normal operation and in a
backfill. Then a Prometheus started here scrapes three flows running on the
embedded broker (session_analytics and exactly_once with recovery,
multi_tenant), evaluates the rules, and every dashboard panel's query and
every variable's must return series.

`make test` installs Debian's `prometheus` package when `prometheus` or
`promtool` is missing (.ci/install-prometheus); without them these tests
are skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest
import yaml
from confluent_kafka import Producer

from eventio import generators
from eventio.broker import EmbeddedBroker
from recovery.directories import init
from tests.exactly_once_harness import make_events, produce

ROOT = Path(__file__).resolve().parents[1]
RULE = ROOT / "deploy/k8s/monitoring/prometheusrule.yaml"
DASHBOARD = ROOT / "deploy/k8s/monitoring/dashboard.json"
UNIT_TESTS = ROOT / "tests/prometheus/alerts_test.yaml"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None or PROMTOOL is None,
    reason="prometheus and promtool are not installed: `make test` installs Debian's prometheus package "
    "(.ci/install-prometheus)",
)


def write_rules(directory: Path) -> Path:
    """The PrometheusRule's `spec`, which is a plain Prometheus rule file."""
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(RULE.read_text())["spec"], sort_keys=False))
    return path


def alert_names() -> list[str]:
    return [r["alert"] for g in yaml.safe_load(RULE.read_text())["spec"]["groups"] for r in g["rules"]]


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    out = promtool("check", "rules", str(write_rules(tmp_path)), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in out.stdout


def test_alert_unit_tests_pass(tmp_path: Path) -> None:
    write_rules(tmp_path)
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    out = promtool("test", "rules", UNIT_TESTS.name, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_fires_in_a_test_and_is_silent_in_normal_operation_and_backfill() -> None:
    tests = {t["name"]: t for t in yaml.safe_load(UNIT_TESTS.read_text())["tests"]}
    for quiet in ("normal operation", "backfill"):
        checked = {c["alertname"] for c in tests[quiet]["alert_rule_test"] if c["exp_alerts"] == []}
        assert checked == set(alert_names()), f"{quiet}: alerts not checked to stay silent"
    for alert in alert_names():
        cases = [c for t in tests.values() for c in t["alert_rule_test"] if c["alertname"] == alert]
        assert any(c["exp_alerts"] for c in cases), f"{alert} never fires in a test"
        firing = min(int(c["eval_time"].rstrip("m")) for c in cases if c["exp_alerts"])
        assert any(not c["exp_alerts"] and int(c["eval_time"].rstrip("m")) < firing for t in tests.values()
                   if any(x["alertname"] == alert and x["exp_alerts"] for x in t["alert_rule_test"])
                   for c in t["alert_rule_test"] if c["alertname"] == alert), f"{alert}: not silent before its for:"


# --- a real Prometheus scraping running flows ------------------------------------------

NAMESPACE = "it"
SCRAPE_S = 1
RATE_INTERVAL = "10s"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Flow:
    """One flow run as `python -m bytewax.run`, its metrics on Bytewax's API server."""

    name: str
    module: str
    env: dict[str, str]
    recovery: bool
    port: int = 0
    process: Optional[subprocess.Popen[bytes]] = None

    def start(self, tmp_path: Path) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "bytewax.run", f"flows.{self.module}:flow"]
        if self.recovery:
            init(tmp_path / f"{self.name}-state", 1)
            argv += ["-r", str(tmp_path / f"{self.name}-state"), "-s", "1", "-b", "0"]
        env = dict(os.environ, BYTEWAX_DATAFLOW_API_ENABLED="true", BYTEWAX_DATAFLOW_API_PORT=str(self.port),
                   BYTEWAX_DATAFLOW_API_CACHE_PATH=str(tmp_path), PYTHONPATH=str(ROOT), **self.env)
        log = open(tmp_path / f"{self.name}.log", "wb")
        self.process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def session_input(bootstrap: str, topic: str) -> None:
    """Session events of early 2024 (a backfill, as far as the watermark lag
    goes), some beyond the allowed lateness, and undecodable records."""
    events = list(generators.disorder(generators.sessions(3000, seed=3, users=50), seed=3, late_fraction=0.03))
    produce(bootstrap, topic, events)
    producer = Producer({"bootstrap.servers": bootstrap})
    for raw in (b"{not json", b"[1, 2]", b'{"event_id": "x"}'):
        producer.produce(topic, raw)
    assert producer.flush(30) == 0


def tenant_input(bootstrap: str, topic: str) -> None:
    produce(bootstrap, topic, list(generators.tenants(2000, seed=3)))


class Feeder(threading.Thread):
    """Keeps input coming while Prometheus scrapes: ten events to each topic
    every 50 ms or so, timestamps advancing 10 s per event (the watermark moves)."""

    def __init__(self, bootstrap: str, topics: list[str], start_ms: int) -> None:
        super().__init__(daemon=True)
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
        self.topics = topics
        self.timestamp = start_ms
        self.stopped = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopped.wait(0.05):
            for _ in range(10):
                n += 1
                self.timestamp += 10_000
                event = {"event_id": f"feed{n}", "user_id": f"u{n % 50:05d}", "event_type": "page_view",
                         "timestamp": self.timestamp, "value": 1.0, "tenant_id": "t01"}
                for topic in self.topics:
                    self.producer.produce(topic, json.dumps(event).encode(), key=event["user_id"].encode())
            self.producer.poll(0)
        self.producer.flush(10)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=20)


def flows(prefix: str, bootstrap: str) -> list[Flow]:
    common = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "START_OFFSET": "earliest", "SHARDS": "4"}
    return [
        Flow("session-analytics", "session_analytics", {
            **common, "INPUT_TOPIC": f"{prefix}-sessions", "OUTPUT_TOPIC": f"{prefix}-sessions-out",
            "LATE_TOPIC": f"{prefix}-sessions-late", "DLQ_TOPIC": f"{prefix}-sessions-dlq",
        }, recovery=True),
        Flow("exactly-once", "exactly_once", {
            **common, "INPUT_TOPIC": f"{prefix}-eo", "OUTPUT_TOPIC": f"{prefix}-eo-out",
            "DLQ_TOPIC": f"{prefix}-eo-dlq", "TRANSACTIONAL_ID_PREFIX": prefix,
        }, recovery=True),
        Flow("multi-tenant", "multi_tenant", {
            **common, "INPUT_TOPIC": f"{prefix}-tenants", "OUTPUT_TOPIC": f"{prefix}-tenants-out",
            "RATE_LIMITED_TOPIC": f"{prefix}-tenants-limited", "DLQ_TOPIC": f"{prefix}-tenants-dlq",
            "TENANT_CONFIG_PATH": str(ROOT / "flows/config/tenants.jsonl"),
        }, recovery=False),
    ]


def prometheus_config(running: list[Flow], rules: Path) -> dict[str, Any]:
    """Scrape each flow's API server as the PodMonitor does, with the labels
    the Prometheus operator and the PodMonitor's relabeling add."""
    return {
        "global": {"scrape_interval": f"{SCRAPE_S}s", "evaluation_interval": f"{SCRAPE_S}s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{
            "job_name": "flows",
            "static_configs": [
                {"targets": [f"127.0.0.1:{f.port}"],
                 "labels": {"namespace": NAMESPACE, "flow": f.name, "pod": f"{f.name}-flow-0"}}
                for f in running
            ],
        }],
    }


class PrometheusAPI:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1"

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("query", query=expr)
        assert data["resultType"] == "vector", data
        return data["result"]


@pytest.fixture
def scraped(broker: EmbeddedBroker, topic_name: str, tmp_path: Path) -> Iterator[PrometheusAPI]:
    """The three flows running, and a Prometheus scraping them and evaluating the rules."""
    bootstrap = broker.bootstrap_servers
    running = flows(topic_name, bootstrap)
    broker.create_topics({f"{topic_name}-sessions": 2, f"{topic_name}-eo": 2, f"{topic_name}-tenants": 1,
                          f"{topic_name}-eo-out": 2})
    session_input(bootstrap, f"{topic_name}-sessions")
    produce(bootstrap, f"{topic_name}-eo", make_events(2000, users=40, seed=3))
    tenant_input(bootstrap, f"{topic_name}-tenants")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    prometheus: Optional[subprocess.Popen[bytes]] = None
    feeder = Feeder(bootstrap, [f"{topic_name}-sessions", f"{topic_name}-eo", f"{topic_name}-tenants"],
                    start_ms=1_704_153_600_000)  # 2024-01-02, after the generated sessions
    try:
        feeder.start()
        for flow in running:
            flow.start(tmp_path)
        config.write_text(yaml.safe_dump(prometheus_config(running, write_rules(tmp_path))))
        assert PROMETHEUS is not None
        log = open(tmp_path / "prometheus.log", "wb")
        prometheus = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        yield PrometheusAPI(port)
    except BaseException:
        for flow in running:
            print(f"--- {flow.name} log:\n" + (tmp_path / f"{flow.name}.log").read_text(errors="replace")[-3000:])
        raise
    finally:
        feeder.stop()
        for flow in running:
            flow.stop()
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=30)


def panel_queries() -> Iterator[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def variable_queries() -> Iterator[tuple[str, str, str]]:
    """`(variable, selector, label)` of the dashboard's `label_values(...)` variables."""
    for var in json.loads(DASHBOARD.read_text())["templating"]["list"]:
        if var["type"] == "query":
            match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", var["query"]["query"])
            assert match, var["name"]
            yield var["name"], match.group(1), match.group(2)


def grafana(expr: str) -> str:
    """A panel query as Grafana sends it with every namespace and flow selected."""
    names = "|".join(f.name for f in flows("x", "x"))
    return (expr.replace("$namespace", NAMESPACE).replace("$flow", names)
            .replace("$__rate_interval", RATE_INTERVAL))


def wait_for(check: Callable[[], list[str]], seconds: float) -> list[str]:
    """Call `check` (it returns what is still missing) until nothing is, or time is up."""
    deadline = time.monotonic() + seconds
    missing = ["not checked yet"]
    while time.monotonic() < deadline:
        try:
            missing = check()
        except OSError as ex:  # Prometheus still starting
            missing = [str(ex)]
        if not missing:
            break
        time.sleep(1)
    return missing


@pytest.mark.integration
def test_every_dashboard_query_returns_series_and_every_rule_evaluates(scraped: PrometheusAPI) -> None:
    def empty_panels() -> list[str]:
        return [f"{title}: {expr}" for title, expr in panel_queries() if not scraped.query(grafana(expr))]

    missing = wait_for(empty_panels, seconds=90)
    assert not missing, "panels without series:\n" + "\n".join(missing)

    def idle_flows() -> list[str]:
        rates = scraped.query(grafana('sum by (flow) (rate(stream_kafka_records_read_total{namespace=~"$namespace", '
                                      'flow=~"$flow"}[$__rate_interval])) > 0'))
        return sorted({f.name for f in flows("x", "x")} - {r["metric"]["flow"] for r in rates})

    assert not wait_for(idle_flows, seconds=30), "every flow reads the live input while scraped"
    for name, selector, label in variable_queries():
        values = {s["metric"].get(label) for s in scraped.query(grafana(selector))}
        expected = {NAMESPACE} if label == "namespace" else {f.name for f in flows("x", "x")}
        assert values == expected, f"variable {name}"

    def unevaluated_rules() -> list[str]:
        rules = [r for g in scraped.get("rules")["groups"] for r in g["rules"]]
        assert {r["name"] for r in rules} == set(alert_names())
        bad = [f"{r['name']}: {r.get('lastError')}" for r in rules if r["health"] == "err"]
        assert not bad, "rules failing on real series:\n" + "\n".join(bad)
        return [r["name"] for r in rules if r["health"] != "ok"]

    assert not wait_for(unevaluated_rules, seconds=10)
    # The series carry what the flows did, not just zeros.
    sel = f'namespace="{NAMESPACE}"'
    for expr in (f'sum(stream_records_out_total{{{sel}, flow="session-analytics", port="late"}})',
                 f'sum(stream_dead_letters_total{{{sel}, flow="session-analytics"}})',
                 f'sum(stream_window_firings_total{{{sel}, flow="session-analytics"}})',
                 f'sum(stream_kafka_transactions_total{{{sel}, flow="exactly-once", outcome="committed"}})',
                 f'sum(stream_tenant_events_total{{{sel}, flow="multi-tenant"}})',
                 f'sum(stream_kafka_records_read_total{{{sel}}})'):
        (result,) = scraped.query(expr)
        assert float(result["value"][1]) > 0, expr
