"""What the monitoring tests share: the files under monitoring/, the names the workers export, the
PromQL the rules and the dashboard use, and the Prometheus tools (Debian's `prometheus` package)."""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "monitoring" / "prometheus"
RULES = PROMETHEUS_DIR / "rules.yml"
RULES_TEST = PROMETHEUS_DIR / "rules_test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
GRAFANA_DIR = ROOT / "monitoring" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "esep.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "esep.yml"

ALERTS = {
    "EsepWorkerDown", "EsepConsumerLagGrowing", "EsepPendingNearDeadline", "EsepDeadlineBreach",
    "EsepDeadLetterRate", "EsepRefundRateSpike", "EsepRegistryNotReady", "EsepCalendarRunningOut",
    "EsepIllegalTransitions", "EsepHeldTransfersNearCutoff", "EsepReportVersionLate",
}
# Labels are bounded enums or deployment constants: a new label is added here on purpose.
ALLOWED_LABELS = {"outcome", "reason", "status", "knp", "source", "error_kind", "topic", "partition", "kind",
                  "store", "stage", "payment_type", "decision", "input", "endpoint",
                  # The monthly report: version (preliminary, final, revised); month (YYYY-MM) only on
                  # the assembler's gauges of open months and of its last version.
                  "version", "month",
                  # The stores' memory: cache or write_buffers.
                  "part"}
INFO_LABELS = {"version", "worker_id", "app_id"}
# Personal or per-record data: never a label (confidentiality, and unbounded cardinality).
FORBIDDEN_LABELS = {"iin", "name", "surname", "patronymic", "birth_date", "payer", "payer_name", "bin_iin",
                    "iban", "notification_id", "document_number", "entry_id", "refund_id", "line_no"}

METRIC_REF = re.compile(r"(?<![\w:])esep_[A-Za-z0-9_]+")
RECORDED_REF = re.compile(r"(?<![\w:])esep:[A-Za-z0-9_:]+")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "unknown": ("",),
}


def yaml():
    return pytest.importorskip("yaml", reason="PyYAML is needed to read the monitoring files (test extra)")


def exported_names() -> dict[str, str]:
    """Every series name a worker's /metrics can show -> its family, from monitoring.metrics.REGISTRY."""
    from monitoring import metrics

    out = {}
    for family in metrics.REGISTRY.collect():
        for suffix in SUFFIXES[family.type]:
            out[family.name + suffix] = family.name
    return out


def metric_label_names() -> dict[str, tuple[str, ...]]:
    """Label names of every metric in monitoring/metrics.py, and the keys esep_worker_info is given."""
    from prometheus_client.metrics import MetricWrapperBase

    from monitoring import metrics

    out = {obj._name: tuple(obj._labelnames) for obj in vars(metrics).values()
           if isinstance(obj, MetricWrapperBase)}
    out["esep_worker_info"] = tuple(sorted(info_keys()))
    return out


def info_keys() -> set[str]:
    """Keys of the dicts passed to `worker_info.info(...)` anywhere in the application's source."""
    keys: set[str] = set()
    for package in ("streams", "tables", "monitoring"):
        for path in sorted((ROOT / package).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "info"
                        and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "worker_info"):
                    for arg in node.args:
                        assert isinstance(arg, ast.Dict), f"{path.name}: worker_info.info() needs a literal dict"
                        keys |= {k.value for k in arg.keys if isinstance(k, ast.Constant)}
    return keys


def rules() -> dict:
    return yaml().safe_load(RULES.read_text(encoding="utf-8"))


def alert_rules() -> dict[str, dict]:
    return {r["alert"]: r for g in rules()["groups"] for r in g["rules"] if "alert" in r}


def recorded_names() -> set[str]:
    return {r["record"] for g in rules()["groups"] for r in g["rules"] if "record" in r}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels(dash: dict | None = None) -> list[dict]:
    """Every panel, nested ones (in collapsed rows) included."""
    out = []
    for p in (dash or dashboard())["panels"]:
        out.append(p)
        out.extend(p.get("panels") or [])
    return out


def dashboard_queries(dash: dict | None = None) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every annotation query."""
    dash = dash or dashboard()
    out = []
    for p in panels(dash):
        for t in p.get("targets") or []:
            out.append((f"panel {p['id']} {p.get('title')!r} {t['refId']}", t["expr"]))
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("expr"):
            out.append((f"annotation {a['name']!r}", a["expr"]))
    return out


def concrete(expr: str, rate_interval: str = "1m", range_: str = "1h") -> str:
    """A dashboard query with Grafana's variables replaced, as Grafana would send it."""
    return (expr.replace("$__rate_interval", rate_interval).replace("$__interval", rate_interval)
            .replace("$__range", range_).replace("$instance", ".*"))


def provisioned_datasource_uid() -> str:
    (ds,) = [d for d in yaml().safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]
             if d["type"] == "prometheus"]
    return ds["uid"]


def require_tool(name: str) -> str:
    """Path of a Prometheus tool. Missing: a failure in CI (CI=true), a skip elsewhere."""
    path = shutil.which(name)
    if path:
        return path
    why = (f"`{name}` is not installed: run .ci/install-prometheus.sh "
           "(Debian's prometheus package: prometheus and promtool)")
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(why + " — CI must run the rule tests", pytrace=False)
    pytest.skip(why)
