"""Secured clusters from the environment: TLS end to end with
`KAFKA_PROPERTIES_FILE`, a certificate from another CA refused at start-up,
and SASL/SCRAM against the embedded broker's `--authentication`, whose
password appears in none of a failing run's output, metrics or dataflow API.

What the embedded broker (Tansu 0.6) cannot show: it serves no TLS itself
(`tests/tls_proxy.py` puts a TLS endpoint in front of it); with
`--authentication` it offers SCRAM but no PLAIN, and it takes SCRAM users
only from an already authenticated client (AlterUserScramCredentials), which
its memory storage never has, so no SASL login can succeed: the tests show
the SCRAM exchange reaching the broker and being refused (`unknown-user`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from bytewax.testing import run_main
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from eventio.broker import EmbeddedBroker, free_port
from tests.flow_runs import ROOT, EXIT_UNAVAILABLE, assert_stopped_cleanly, run_flow
from tests.tls_proxy import TlsProxy, make_certificates
from tests.topic_reader import read_all

pytestmark = pytest.mark.integration

PASSWORD = "pw-7f3a9c-never-shown"


def _events() -> list[dict[str, Any]]:
    return [{"event_id": f"t{i}", "user_id": f"u{i % 7}", "event_type": "page_view",
             "timestamp": 1_704_067_200_000 + i * 90_000} for i in range(300)]


def test_a_flow_reads_and_writes_through_tls_configured_by_a_properties_file(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    proxy_port = free_port()
    with EmbeddedBroker(advertised=f"localhost:{proxy_port}") as broker, \
            TlsProxy(broker.port, certs, port=proxy_port):
        tls = {"bootstrap.servers": f"localhost:{proxy_port}", "security.protocol": "SSL",
               "ssl.ca.location": str(certs.ca)}
        admin = AdminClient(tls)
        for future in admin.create_topics([NewTopic(t, 1, 1) for t in ("tls-in", "tls-out", "tls-dlq")]).values():
            future.result(20)
        producer = Producer(tls)
        for event in _events():
            producer.produce("tls-in", json.dumps(event).encode())
        assert producer.flush(20) == 0
        props = tmp_path / "client.properties"
        props.write_text(f"bootstrap.servers=localhost:{proxy_port}\nsecurity.protocol=SSL\n"
                         f"ssl.ca.location={certs.ca}\n")
        run = run_flow("flows.session_analytics:flow", {
            "KAFKA_PROPERTIES_FILE": str(props), "INPUT_TOPIC": "tls-in", "OUTPUT_TOPIC": "tls-out",
            "DLQ_TOPIC": "tls-dlq", "LATE_TOPIC": "tls-dlq", "STOP_AT_END": "true"}, timeout_s=120)
        assert run.status == 0, run.output[-3000:]
        got = sorted(r.value.decode() for r in read_all(f"localhost:{proxy_port}", "tls-out", config=tls))

        # A certificate from another CA is refused, and said so, at start-up.
        other = make_certificates(tmp_path, "other")
        props.write_text(f"bootstrap.servers=localhost:{proxy_port}\nsecurity.protocol=SSL\n"
                         f"ssl.ca.location={other.ca}\n")
        refused = run_flow("flows.session_analytics:flow", {
            "KAFKA_PROPERTIES_FILE": str(props), "KAFKA_CONNECT_TIMEOUT_S": "3", "INPUT_TOPIC": "tls-in",
            "OUTPUT_PATH": str(tmp_path / "never.jsonl")})
    assert_stopped_cleanly(refused, f"cannot reach Kafka: no broker of localhost:{proxy_port} (bootstrap.servers "
                                    f"in KAFKA_PROPERTIES_FILE ({props})) answered within 3 s")
    assert "certificate verify failed" in refused.last_line

    from flows.session_analytics import build

    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in _events()))
    run_main(build(input_path=str(source), output_path=str(tmp_path / "want.jsonl")))
    assert got == sorted((tmp_path / "want.jsonl").read_text().splitlines()) and got


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode(errors="replace")
    except OSError:
        return ""


def test_a_sasl_password_from_the_environment_appears_nowhere_in_a_failing_run(tmp_path: Path) -> None:
    metrics_port, api_port = free_port(), free_port()
    with EmbeddedBroker(authentication=True) as broker:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
               "KAFKA_CONNECT_TIMEOUT_S": "6", "KAFKA_PROPERTY_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
               "KAFKA_PROPERTY_SASL_MECHANISM": "SCRAM-SHA-256", "KAFKA_PROPERTY_SASL_USERNAME": "flow",
               "KAFKA_PROPERTY_SASL_PASSWORD": PASSWORD,
               "METRICS_PORT": str(metrics_port), "BYTEWAX_DATAFLOW_API_ENABLED": "true",
               "BYTEWAX_DATAFLOW_API_PORT": str(api_port), "BYTEWAX_DATAFLOW_API_CACHE_PATH": str(tmp_path),
               "OUTPUT_PATH": str(tmp_path / "out.jsonl")}
        flow = subprocess.Popen([sys.executable, "-m", "bytewax.run", "flows.session_analytics:flow"], env=env,
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        pages = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and flow.poll() is None:
            pages += [_get(f"http://127.0.0.1:{metrics_port}/metrics"), _get(f"http://127.0.0.1:{api_port}/metrics"),
                      _get(f"http://127.0.0.1:{api_port}/dataflow")]
            time.sleep(0.5)
        output = flow.communicate(timeout=60)[0].decode(errors="replace")
        broker_log = broker.log_tail(100_000)
    assert flow.returncode == EXIT_UNAVAILABLE, output[-3000:]
    assert any("stream_dead_letters" in page for page in pages), "the metrics were never scraped"
    assert any("session_analytics" in page for page in pages), "the dataflow API was never read"
    assert PASSWORD not in output and not [page for page in pages if PASSWORD in page]
    last = output.strip().splitlines()[-1]
    assert last.startswith(f"cannot reach Kafka: no broker of {broker.bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS)")
    assert "SASL" in last and "unknown-user" in last  # the SCRAM exchange reached the broker
    assert "Traceback" not in output and "panicked" not in output
    assert PASSWORD not in broker_log
