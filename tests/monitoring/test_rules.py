"""The alert and recording rules: checked and unit-tested by the real `promtool` (Debian's
`prometheus` package, see .ci/install-prometheus.sh), and compared with the metrics the workers
really export (monitoring/metrics.py)."""
from __future__ import annotations

import re
import subprocess

import pytest

from .common import (
    ALERTS, ALLOWED_LABELS, FORBIDDEN_LABELS, INFO_LABELS, METRIC_REF, PROMETHEUS_CONFIG, RECORDED_REF, ROOT,
    RULES, RULES_TEST, alert_rules, concrete, dashboard_queries, exported_names, metric_label_names,
    recorded_names, require_tool, rules, yaml,
)


def promtool(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([require_tool("promtool"), *args], capture_output=True, text=True, timeout=120,
                            cwd=ROOT)
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


# ---- promtool ------------------------------------------------------------------------------------

def test_promtool_checks_the_rules():
    out = promtool("check", "rules", str(RULES)).stdout
    assert "SUCCESS" in out


def test_promtool_unit_tests_of_the_rules_pass():
    out = promtool("test", "rules", str(RULES_TEST)).stdout
    assert "SUCCESS" in out


def test_promtool_checks_the_prometheus_config_and_the_rules_it_loads():
    # Targets are not resolved by `check config`: the compose hostnames need no DNS here.
    out = promtool("check", "config", str(PROMETHEUS_CONFIG)).stdout
    assert "SUCCESS" in out and "rules.yml" in out, out


def test_promtool_parses_every_dashboard_query(tmp_path):
    """The dashboard's PromQL, with Grafana's variables filled in, as recording rules: `promtool
    check rules` parses each one (a typo or a wrong function would fail here, not in Grafana)."""
    queries = dashboard_queries()
    assert queries
    group = {"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": concrete(expr)} for i, (_, expr) in enumerate(queries)]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml().safe_dump({"groups": [group]}), encoding="utf-8")
    result = subprocess.run([require_tool("promtool"), "check", "rules", "--lint=none", str(path)],
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        bad = re.findall(r"dashboard:query_(\d+)", result.stdout + result.stderr)
        where = [queries[int(i)][0] for i in bad]
        pytest.fail(f"promtool rejects dashboard queries {where}:\n{result.stdout}\n{result.stderr}")


# ---- the rules themselves ------------------------------------------------------------------------

def test_the_issue_alerts_exist_with_severity_and_operator_text():
    alerts = alert_rules()
    assert set(alerts) == ALERTS
    readme = (ROOT / "monitoring" / "README.md").read_text(encoding="utf-8")
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", readme, re.M)}
    for name, rule in alerts.items():
        assert rule["labels"].get("severity") in ("critical", "warning"), name
        assert rule["labels"].get("service") == "esep", name
        annotations = rule.get("annotations") or {}
        assert annotations.get("summary") and len(annotations.get("description", "")) > 80, (
            f"{name}: a summary and a description that says what to do")
        runbook = annotations.get("runbook", "")
        assert runbook.startswith("monitoring/README.md#"), name
        assert runbook.split("#", 1)[1] in anchors, f"{name}: {runbook} is no heading of monitoring/README.md"


def test_deadline_breach_pages_at_once_and_the_others_wait():
    alerts = alert_rules()
    assert "for" not in alerts["EsepDeadlineBreach"], "a deadline breach pages at the first evaluation"
    assert alerts["EsepDeadlineBreach"]["labels"]["severity"] == "critical"
    for name in ALERTS - {"EsepDeadlineBreach"}:
        assert alerts[name].get("for"), f"{name}: no `for:` (a single bad scrape would page)"


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    cases = yaml().safe_load(RULES_TEST.read_text(encoding="utf-8"))
    assert cases["rule_files"] == [RULES.name]
    firing, quiet = set(), set()
    for test in cases["tests"]:
        for check in test.get("alert_rule_test") or []:
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert firing == ALERTS, f"no case where these fire: {sorted(ALERTS - firing)}"
    assert quiet == ALERTS, f"no case where these stay quiet: {sorted(ALERTS - quiet)}"


def test_every_worker_selector_in_the_rules_names_the_job():
    """Other jobs' series never feed the alerts: every selector of an esep metric says job="esep"."""
    for group in rules()["groups"]:
        for rule in group["rules"]:
            for match in re.finditer(r"(esep_[a-z0-9_]+|\bup\b)\s*(\{[^}]*\})?", rule["expr"]):
                assert match.group(2) and 'job="esep"' in match.group(2), (
                    f"{rule.get('alert') or rule.get('record')}: {match.group(0)!r} does not select job=\"esep\"")


# ---- names and labels against monitoring/metrics.py -------------------------------------------------

def test_exported_names_include_the_suffixes_prometheus_sees():
    names = exported_names()
    for expected in ("esep_lines_total", "esep_posting_latency_from_received_seconds_bucket",
                     "esep_posting_latency_from_ingest_seconds_count", "esep_recovery_seconds_sum",
                     "esep_worker_info", "esep_pending_lines", "esep_deadline_breaches_total"):
        assert expected in names
    assert "esep_lines" not in names, "a counter is exposed with _total only"


@pytest.mark.parametrize("path", ["monitoring/prometheus/rules.yml", "monitoring/prometheus/rules_test.yml",
                                  "monitoring/grafana/dashboards/esep.json", "monitoring/README.md"])
def test_every_metric_name_used_is_exported_by_the_workers(path):
    text = (ROOT / path).read_text(encoding="utf-8")
    exported = exported_names()
    used = set(METRIC_REF.findall(text))
    assert used, f"{path} references no esep metric"
    unknown = sorted(used - set(exported))
    assert not unknown, f"{path} uses names monitoring/metrics.py does not export: {unknown}"
    recorded = set(RECORDED_REF.findall(text))
    missing = sorted(recorded - recorded_names())
    assert not missing, f"{path} uses recording rules rules.yml does not define: {missing}"


def test_dashboard_queries_name_exported_metrics_or_recorded_series():
    exported, recorded = set(exported_names()), recorded_names()
    for where, expr in dashboard_queries():
        names = set(METRIC_REF.findall(expr)) | set(RECORDED_REF.findall(expr))
        assert names or "up{" in expr or "ALERTS" in expr, f"{where}: names no metric"
        assert names <= exported | recorded, f"{where}: unknown {sorted(names - exported - recorded)}"


def test_no_personal_data_or_unbounded_label():
    labels = metric_label_names()
    assert labels, "no metrics found in monitoring/metrics.py"
    for metric, names in labels.items():
        allowed = INFO_LABELS if metric == "esep_worker_info" else ALLOWED_LABELS
        assert not set(names) & FORBIDDEN_LABELS, f"{metric}: personal or per-record label {set(names) & FORBIDDEN_LABELS}"
        assert set(names) <= allowed, (
            f"{metric}: labels {sorted(set(names) - allowed)} are not known bounded enums; if they are, "
            "add them to ALLOWED_LABELS in tests/monitoring/common.py")
    assert set(labels["esep_worker_info"]) == INFO_LABELS


def test_the_rules_add_no_personal_label():
    for name, rule in alert_rules().items():
        assert not set(rule.get("labels") or {}) & FORBIDDEN_LABELS, name
        for text in (rule.get("annotations") or {}).values():
            for label in re.findall(r"\$labels\.([a-z_]+)", text):
                assert label not in FORBIDDEN_LABELS, f"{name}: annotation shows {label}"
