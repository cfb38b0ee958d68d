"""A real Prometheus server (Debian's `prometheus` package) scraping a real worker on the test
broker, with the real alert rules loaded: the metric comes back through Prometheus' HTTP API, every
rule evaluates without error, every dashboard query runs, and no series carries personal data."""
from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tools.process import Child, ChildError, http_ok

from ..cases import example_notification, registry_persons
from ..integration.harness import Stack, free_port
from .common import ALERTS, FORBIDDEN_LABELS, RULES, concrete, dashboard_queries, require_tool, yaml

pytestmark = pytest.mark.integration


class PrometheusServer:
    def __init__(self, binary: str, tmp, scrape_port: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "prometheus.log"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "esep",
                                "static_configs": [{"targets": [f"127.0.0.1:{scrape_port}"]}]}],
        }
        self.config_path = tmp / "prometheus.yml"
        self.config_path.write_text(yaml().safe_dump(config), encoding="utf-8")
        self.child = Child([binary, f"--config.file={self.config_path}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                            f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
                           self.log_path, name="prometheus")

    def start(self) -> "PrometheusServer":
        self.child.start()
        return self

    def stop(self) -> None:
        self.child.stop(20)

    def log_tail(self, n: int = 30) -> str:
        return self.child.log_tail(n)

    def get(self, path: str, **params) -> dict:
        query = urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(f"{self.url}{path}{'?' + query if query else ''}", timeout=5) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.get("/api/v1/query", query=expr)["result"]

    def wait_ready(self, timeout: float = 30) -> None:
        try:
            self.child.wait_ready(lambda: http_ok(f"{self.url}/-/ready"), timeout)
        except ChildError as exc:
            raise AssertionError(str(exc)) from None

    def wait_for(self, what: str, check, timeout: float = 60):
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            try:
                last = check()
            except (OSError, AssertionError, KeyError) as exc:
                last = exc
            else:
                if last:
                    return last
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n{self.log_tail()}")


def wait_decided(worker, orders: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if worker.metric("esep_orders_total") >= orders:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the worker decided no order in {timeout}s:\n{worker.log_tail()}")


def late_notification() -> dict:
    """An order received years ago: whatever the clock, it is decided after its deadline. Its one
    line has an IIN with a wrong check digit, so it is refunded (INVALID_IIN) and posts nothing."""
    order = example_notification()
    line = {**next(ln for ln in order["lines"] if ln["line_no"] == 2), "line_no": 1, "period": "2019-12"}
    order.update(notification_id="HSBK-20200106-000007", document_number="7", document_date="2020-01-06",
                 sent_date="2020-01-06", received_at="2020-01-06T10:15:00+05:00", period="2019-12",
                 total_amount=line["amount"], lines=[line])
    return order


def utc_second(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))


def test_prometheus_scrapes_a_worker_and_evaluates_the_rules(broker, tmp_path):
    binary = require_tool("prometheus")
    stack = Stack(broker, tmp_path)
    prometheus = None
    try:
        persons = registry_persons()
        stack.send_registry(persons)
        worker = stack.worker("w1").start()
        worker.wait_ready()

        prometheus = PrometheusServer(binary, tmp_path, worker.port).start()
        prometheus.wait_ready()
        up = prometheus.wait_for("up == 1", lambda: prometheus.query('up{job="esep"} == 1'))
        assert up[0]["metric"]["instance"] == f"127.0.0.1:{worker.port}"
        assert float(prometheus.query('esep_registry_ready{job="esep"}')[0]["value"][1]) == 1.0
        breaches = prometheus.query('esep_deadline_breaches_total{job="esep"}')
        assert [float(s["value"][1]) for s in breaches] == [0.0], "scraped before any order"

        # Decided while Prometheus watches: the example and an order past its deadline.
        order, late = example_notification(), late_notification()
        stack.send_notification(order)
        stack.send_notification(late)
        stack.flush()
        wait_decided(worker, 2)

        # The metric comes back through Prometheus: the example posts lines 1 and 3, nothing else posts.
        def posted():
            result = prometheus.query('esep_lines_total{job="esep", outcome="posted"}')
            return result if result and float(result[0]["value"][1]) > 0 else None

        result = prometheus.wait_for("esep_lines_total from the worker", posted)
        assert [float(s["value"][1]) for s in result] == [2.0], result
        refunded = {s["metric"]["reason"]: float(s["value"][1])
                    for s in prometheus.query('esep_lines_total{job="esep", outcome="refunded"}')}
        assert refunded.get("INVALID_IIN") == 2.0, refunded  # one in each order
        data_time = utc_second(float(result[0]["value"][0]))

        # The real rules are loaded, and each evaluates without error once the series exist.
        def evaluated_after_data():
            rules = [r for g in prometheus.get("/api/v1/rules")["groups"] for r in g["rules"]]
            return rules if rules and all(r["lastEvaluation"][:19] > data_time for r in rules) else None

        rules = prometheus.wait_for("every rule evaluated on the data", evaluated_after_data, timeout=30)
        assert {r["name"] for r in rules if r["type"] == "alerting"} == ALERTS
        broken = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
        assert not broken, f"rules failing on a real server: {broken}"

        # The late order pages at once: EsepDeadlineBreach fires, on this worker.
        def breach_firing():
            alerts = prometheus.get("/api/v1/alerts")["alerts"]
            return [a for a in alerts if a["labels"]["alertname"] == "EsepDeadlineBreach" and a["state"] == "firing"]

        (breach,) = prometheus.wait_for("EsepDeadlineBreach firing", breach_firing, timeout=30)
        assert breach["labels"]["instance"] == f"127.0.0.1:{worker.port}"
        assert breach["labels"]["severity"] == "critical"
        assert "after their business-day deadline" in breach["annotations"]["summary"]
        firing = {a["labels"]["alertname"] for a in prometheus.get("/api/v1/alerts")["alerts"]
                  if a["state"] == "firing"}
        assert firing == {"EsepDeadlineBreach"}, f"only the breach should fire: {firing}"

        # Every dashboard query runs on the real server.
        for where, expr in dashboard_queries():
            try:
                prometheus.query(concrete(expr, rate_interval="30s", range_="5m"))
            except urllib.error.HTTPError as exc:
                pytest.fail(f"{where}: Prometheus rejects {expr!r}: {exc.read().decode()[:300]}")
        lines_per_s = concrete(
            'sum by (outcome) (rate(esep_lines_total{job="esep", instance=~"$instance"}[$__rate_interval]))',
            rate_interval="1m")
        rates = prometheus.wait_for("a lines/s panel with data", lambda: prometheus.query(lines_per_s))
        assert {s["metric"]["outcome"] for s in rates} == {"posted", "refunded"}

        # No personal data in any series: label names, and values (IINs, names, ids, the payer).
        series = prometheus.get("/api/v1/series", **{"match[]": '{job="esep"}'})
        assert len(series) > 20
        secrets = {p["iin"] for p in persons} | {p["surname"] for p in persons} | {p["name"] for p in persons}
        for o in (order, late):
            secrets |= {ln["iin"] for ln in o["lines"]} | {ln["surname"].strip() for ln in o["lines"]}
            secrets |= {o["notification_id"], o["payer"]["name"], o["payer"]["bin_iin"], o["payer"]["iban"]}
        for labels in series:
            assert not set(labels) & FORBIDDEN_LABELS, labels
            for key, value in labels.items():
                assert value not in secrets, f"{labels['__name__']}: {key}={value!r} is personal data"
                assert not re.search(r"\d{12}", value), f"{labels['__name__']}: {key}={value!r} looks like an IIN"
    finally:
        if prometheus is not None:
            prometheus.stop()
        stack.close()
