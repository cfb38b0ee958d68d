"""Tests of the local Kafka launcher (localkafka).

The unit tests need neither Java nor the network. The integration test starts a real
broker (version from ESEP_KAFKA_VERSION, default 3.9.1); it needs a JDK and Maven
Central the first time, when the jars are downloaded into the cache.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tools import localkafka
from tools.localkafka import BrokerError, BrokerInfo
from tools.localkafka import broker as broker_mod
from tools.localkafka import config, jars, ports, state


def parse_properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


# --------------------------------------------------------------------------- properties


def test_server_properties_single_node_kraft(tmp_path):
    props = parse_properties(
        config.render_properties(config.server_settings(19092, 19093, tmp_path / "logs"))
    )
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["log.dirs"] == str(tmp_path / "logs")
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.min.session.timeout.ms"] == "1000"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    # The broker refuses to start with less than 1 MiB of dedupe buffer per cleaner thread.
    threads = int(props["log.cleaner.threads"])
    assert int(props["log.cleaner.dedupe.buffer.size"]) > threads * 1024 * 1024
    # Nothing may listen beyond loopback.
    assert "0.0.0.0" not in "".join(props.values())


def test_logging_config_3x_uses_log4j1(tmp_path):
    cfg = config.logging_config("3.9.1", tmp_path, tmp_path / "broker.log")
    assert cfg.filename == "log4j.properties"
    assert cfg.jvm_flag == f"-Dlog4j.configuration=file:{tmp_path / 'log4j.properties'}"
    props = parse_properties(cfg.content)
    assert props["log4j.rootLogger"] == "WARN, file"
    assert props["log4j.appender.file.File"] == str(tmp_path / "broker.log")
    assert props["log4j.logger.kafka.server.KafkaRaftServer"] == "INFO"


def test_logging_config_4x_uses_log4j2(tmp_path):
    cfg = config.logging_config("4.1.1", tmp_path, tmp_path / "broker.log")
    assert cfg.filename == "log4j2.properties"
    assert cfg.jvm_flag == f"-Dlog4j2.configurationFile={tmp_path / 'log4j2.properties'}"
    props = parse_properties(cfg.content)
    assert props["rootLogger.level"] == "WARN"
    assert props["appender.file.fileName"] == str(tmp_path / "broker.log")
    assert "log4j.rootLogger" not in props
    info_loggers = {props[k] for k in props if k.endswith(".name") and k.startswith("logger.")}
    assert "kafka.server.KafkaRaftServer" in info_loggers


def test_written_config_files_match_version(tmp_path):
    dir3, dir4 = tmp_path / "v3", tmp_path / "v4"
    dir3.mkdir()
    dir4.mkdir()
    flag3 = broker_mod._write_configs(dir3, "3.9.1", 19092, 19093)
    flag4 = broker_mod._write_configs(dir4, "4.1.1", 19092, 19093)
    assert flag3 == f"-Dlog4j.configuration=file:{dir3 / 'log4j.properties'}"
    assert flag4 == f"-Dlog4j2.configurationFile={dir4 / 'log4j2.properties'}"
    assert (dir3 / "log4j.properties").is_file() and not (dir3 / "log4j2.properties").exists()
    assert (dir4 / "log4j2.properties").is_file() and not (dir4 / "log4j.properties").exists()
    # The broker settings themselves do not depend on the version.
    props3 = parse_properties((dir3 / "server.properties").read_text())
    props4 = parse_properties((dir4 / "server.properties").read_text())
    assert props3.pop("log.dirs") == str(dir3 / "logs")
    assert props4.pop("log.dirs") == str(dir4 / "logs")
    assert props3 == props4


def test_cluster_id_is_16_urlsafe_bytes():
    cid = broker_mod.new_cluster_id()
    assert len(cid) == 22 and "=" not in cid
    assert len(base64.urlsafe_b64decode(cid + "==")) == 16
    assert cid != broker_mod.new_cluster_id()


# --------------------------------------------------------------------------- jars


def pom_dependencies(version: str) -> set[str]:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.fromstring(jars.render_pom(version))
    return {
        ":".join(dep.findtext(f"m:{tag}", namespaces=ns) for tag in ("groupId", "artifactId", "version"))
        for dep in root.iterfind("m:dependencies/m:dependency", ns)
    }


def test_pom_for_3x_declares_reload4j_backend():
    assert pom_dependencies("3.9.1") == {
        "org.apache.kafka:kafka_2.13:3.9.1",
        "org.slf4j:slf4j-reload4j:1.7.36",
        "ch.qos.reload4j:reload4j:1.2.25",
    }


def test_pom_for_4x_declares_log4j2_backend():
    assert pom_dependencies("4.1.1") == {
        "org.apache.kafka:kafka_2.13:4.1.1",
        "org.apache.logging.log4j:log4j-slf4j-impl:2.24.3",
    }


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("ESEP_KAFKA_CACHE", str(tmp_path))
    assert jars.libs_dir("3.9.1") == tmp_path / "3.9.1" / "libs"
    monkeypatch.delenv("ESEP_KAFKA_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert jars.libs_dir("4.1.1") == Path.home() / ".cache" / "esep" / "kafka" / "4.1.1" / "libs"


def test_ensure_jars_returns_completed_cache_without_maven(monkeypatch, tmp_path):
    libs = tmp_path / "3.9.1" / "libs"
    libs.mkdir(parents=True)
    (libs / jars.MARKER).write_text("{}")
    monkeypatch.setenv("PATH", "")  # any attempt to run mvn would fail
    messages = []
    assert localkafka.ensure_jars("3.9.1", cache_dir=tmp_path, log=messages.append) == libs
    assert messages == []


FAKE_MVN = """#!/bin/sh
# Stands in for Maven: "downloads" one jar into -DoutputDirectory, or fails on request.
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}";; esac
done
if [ -n "$FAKE_MVN_FAIL" ]; then echo "[ERROR] Could not resolve dependencies"; exit 1; fi
mkdir -p "$out" && echo jar > "$out/kafka_2.13-9.9.9.jar"
"""


@pytest.fixture
def fake_mvn(monkeypatch, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text(FAKE_MVN)
    mvn.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return mvn


def test_ensure_jars_moves_download_into_place(fake_mvn, tmp_path):
    cache = tmp_path / "cache"
    messages = []
    libs = localkafka.ensure_jars("9.9.9", cache_dir=cache, log=messages.append)
    assert libs == cache / "9.9.9" / "libs"
    assert (libs / "kafka_2.13-9.9.9.jar").is_file()
    assert jars.is_complete(libs)
    assert "downloading Apache Kafka 9.9.9 jars from Maven Central (once)" in messages[0]
    # No staging directory is left behind.
    assert sorted(p.name for p in libs.parent.iterdir()) == [".lock", "libs"]


def test_ensure_jars_failure_leaves_no_cache(fake_mvn, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_MVN_FAIL", "1")
    cache = tmp_path / "cache"
    with pytest.raises(BrokerError, match="Could not resolve dependencies") as err:
        localkafka.ensure_jars("9.9.9", cache_dir=cache, log=lambda _: None)
    assert "Maven Central" in str(err.value)
    assert sorted(p.name for p in (cache / "9.9.9").iterdir()) == [".lock"]


def test_ensure_jars_without_maven_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError, match="Install it"):
        localkafka.ensure_jars("3.9.1", cache_dir=tmp_path, log=lambda _: None)


# --------------------------------------------------------------------------- ports


def test_pick_free_ports_are_distinct_and_bindable():
    picked = ports.pick_free_ports(3)
    assert len(set(picked)) == 3
    for port in picked:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
            sock.listen()


def test_port_is_free_and_answers_see_a_listener():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not ports.port_is_free(port)
        assert ports.port_answers(port)
    assert ports.port_is_free(port)
    assert not ports.port_answers(port)


def test_remembered_ports_are_reused(tmp_path):
    first = broker_mod._choose_ports(tmp_path, None)
    assert broker_mod._choose_ports(tmp_path, None) == first
    assert state.read_ports(tmp_path) == first


def test_taken_remembered_port_fails_clearly(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        state.write_ports(tmp_path, ports.pick_free_ports(1)[0], taken)
        with pytest.raises(BrokerError, match=f"controller port {taken} .* in use"):
            broker_mod._choose_ports(tmp_path, None)


# --------------------------------------------------------------------------- state, stop, status


def sample_info(tmp_path, pid: int = 4242) -> BrokerInfo:
    return BrokerInfo(
        port=19092, controller_port=19093, pid=pid, version="3.9.1",
        data_dir=tmp_path, log_path=tmp_path / "broker.log",
    )


def test_state_file_round_trip(tmp_path):
    info = sample_info(tmp_path)
    state.write_state(info)
    assert state.read_state(tmp_path) == info
    assert info.bootstrap == "127.0.0.1:19092"
    assert info.url == "kafka://127.0.0.1:19092"
    state.clear_state(tmp_path)
    assert state.read_state(tmp_path) is None


def test_corrupt_state_file_reads_as_none(tmp_path):
    (tmp_path / state.STATE_FILE).write_text("{not json")
    assert state.read_state(tmp_path) is None


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stop_without_state_returns_false(tmp_path):
    assert localkafka.stop(tmp_path) is False


def test_stop_dead_pid_returns_false_and_clears_state(tmp_path):
    state.write_state(sample_info(tmp_path, pid=dead_pid()))
    assert localkafka.status(tmp_path) is None
    assert localkafka.stop(tmp_path) is False
    assert not (tmp_path / state.STATE_FILE).exists()


def test_stop_never_signals_a_foreign_process(tmp_path):
    # The recorded pid now belongs to something that is not this data dir's broker.
    foreign = subprocess.Popen(["sleep", "30"])
    try:
        state.write_state(sample_info(tmp_path, pid=foreign.pid))
        assert localkafka.status(tmp_path) is None
        assert localkafka.stop(tmp_path, timeout=1) is False
        assert foreign.poll() is None
    finally:
        foreign.kill()
        foreign.wait()


# --------------------------------------------------------------------------- integration


def kafka_version() -> str:
    return os.environ.get("ESEP_KAFKA_VERSION", localkafka.DEFAULT_VERSION)


@pytest.mark.integration
def test_real_broker_serves_topics_and_restarts_on_same_data_dir(tmp_path):
    if shutil.which("java") is None:
        pytest.skip("needs java (JDK 17+) on PATH")
    from kafka import KafkaAdminClient

    version = kafka_version()
    data_dir = tmp_path / "kafka"

    def partitions_of(info: BrokerInfo, topic: str) -> list[int]:
        admin = KafkaAdminClient(
            bootstrap_servers=info.bootstrap, reconnect_backoff_ms=50, reconnect_backoff_max_ms=200
        )
        try:
            if topic not in admin.list_topics():
                admin.create_topics(
                    {topic: {"num_partitions": 3, "replication_factor": 1}}, wait_for_metadata=True
                )
            [described] = admin.describe_topics([topic])
            return sorted(p["partition_index"] for p in described["partitions"])
        finally:
            admin.close()

    info = localkafka.start(data_dir, version=version)
    try:
        assert info.version == version and info.data_dir == data_dir.resolve()
        assert localkafka.status(data_dir) == info
        assert localkafka.start(data_dir, version=version) == info  # reused, not relaunched
        assert partitions_of(info, "esep-probe") == [0, 1, 2]

        assert localkafka.stop(data_dir) is True
        assert not Path(f"/proc/{info.pid}").exists()
        assert localkafka.status(data_dir) is None

        # Same data dir again: storage already formatted, same ports, topic survived.
        again = localkafka.start(data_dir, version=version)
        assert again.pid != info.pid
        assert (again.port, again.controller_port) == (info.port, info.controller_port)
        assert partitions_of(again, "esep-probe") == [0, 1, 2]
    finally:
        localkafka.stop(data_dir)
    assert localkafka.status(data_dir) is None
    assert "Kafka Server started" in info.log_path.read_text()


@pytest.mark.integration
def test_a_cluster_id_beginning_with_a_dash_formats(tmp_path, monkeypatch):
    """URL-safe base64 ids can begin with "-": the storage tool must not read one as an option."""
    from tools import localkafka
    from tools.localkafka import broker

    monkeypatch.setattr(broker, "new_cluster_id", lambda: "-AbCdEfGhIjKlMnOpQrStU")
    info = localkafka.start(tmp_path, version=localkafka.DEFAULT_VERSION)
    try:
        meta = (tmp_path / "logs" / "meta.properties").read_text()
        assert "cluster.id=-AbCdEfGhIjKlMnOpQrStU" in meta
        assert info.bootstrap.startswith("127.0.0.1:")
    finally:
        localkafka.stop(tmp_path)
