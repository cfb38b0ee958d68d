"""The provisioned Grafana dashboard: well formed, on the provisioned datasource, laid out without
overlaps, and showing every metric the workers export. (Its PromQL is parsed by promtool in
test_rules.py and run against a real Prometheus in test_prometheus_integration.py.)"""
from __future__ import annotations

import re

from .common import (
    DASHBOARD, METRIC_REF, PROVIDERS, dashboard, dashboard_queries, exported_names, panels,
    provisioned_datasource_uid, yaml,
)


def test_dashboard_is_a_provisionable_grafana_dashboard():
    dash = dashboard()
    assert dash["uid"] and len(dash["uid"]) <= 40 and dash["title"]
    assert 36 <= dash["schemaVersion"] <= 41, "a schema Grafana 10/11 loads without migration surprises"
    assert "id" not in dash or dash["id"] is None, "a provisioned dashboard carries no database id"
    providers = yaml().safe_load(PROVIDERS.read_text(encoding="utf-8"))["providers"]
    assert any(p["options"]["path"].rstrip("/").endswith("/esep") for p in providers)
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_every_query_uses_the_provisioned_datasource():
    uid = provisioned_datasource_uid()
    dash = dashboard()
    for p in panels(dash):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": uid}, p["title"]
        assert p.get("targets"), f"{p['title']}: no query"
        for t in p["targets"]:
            assert t.get("datasource", p["datasource"])["uid"] == uid, p["title"]
            assert t["expr"].strip(), p["title"]
        assert p.get("description"), f"{p['title']}: say what the panel shows"
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"]["uid"] == uid, var["name"]
    # Every other uid in the file is Grafana's own annotation source.
    uids = set(re.findall(r'"uid":\s*"([^"]+)"', DASHBOARD.read_text(encoding="utf-8")))
    assert uids <= {uid, dash["uid"], "-- Grafana --"}, uids


def test_panels_fit_the_grid_without_overlapping():
    taken: dict[tuple[int, int], str] = {}
    for p in panels():
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in taken, f"{p['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = p["title"]


def test_worker_filter_applies_to_every_worker_query():
    for where, expr in dashboard_queries():
        for match in re.finditer(r"(esep_[a-z0-9_]+|\bup\b)\s*(\{[^}]*\})?", expr):
            if "annotation" in where:
                continue
            selector = match.group(2) or ""
            assert 'job="esep"' in selector and 'instance=~"$instance"' in selector, (
                f"{where}: {match.group(0)!r} ignores the job or the Worker variable")


def test_dashboard_shows_every_exported_metric():
    exported = exported_names()
    used_families = {exported[name] for _, expr in dashboard_queries() for name in METRIC_REF.findall(expr)
                     if name in exported}
    missing = sorted(set(exported.values()) - used_families)
    assert not missing, f"metrics no dashboard panel shows: {missing}"


def test_the_issue_panels_are_there():
    titles = " | ".join(p["title"].lower() for p in panels())
    for needed in ("notifications/s", "lines/s", "refunded lines/s by reason", "tenge posted", "tenge refunded",
                   "latency from the bank", "latency from kafka", "held lines", "oldest held", "cut-off",
                   "deadline breaches", "consumer lag", "dead letters", "registry persons",
                   "registry changes", "rebalances", "recovery", "partitions owned", "workers"):
        assert needed in titles, f"no panel about {needed!r}"
    breaches = next(p for p in panels() if p["type"] == "stat" and "deadline breaches" in p["title"].lower())
    steps = breaches["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[0]["color"] == "green" and steps[-1] == {"color": "red", "value": 1}, "red from the first breach"
