"""The files the broker reads: server.properties and its logging configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .ports import HOST
from .versions import uses_log4j2

NODE_ID = 1

# A single node cannot replicate: internal topics get one replica and one partition
# (fewer partitions = faster start), no initial rebalance delay, few threads.
_TEST_SPEED = {
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "group.initial.rebalance.delay.ms": "0",
    # Lets tests use short consumer session timeouts (broker default minimum: 6 s).
    "group.min.session.timeout.ms": "1000",
    "num.network.threads": "2",
    "num.io.threads": "2",
    "log.cleaner.threads": "1",
    # Must exceed 1 MiB per cleaner thread or the broker refuses to start.
    "log.cleaner.dedupe.buffer.size": "2097152",
}

# broker.log keeps warnings plus the INFO lines that explain what the broker did:
# start/stop, Kafka version, topic creation and consumer-group rebalances. Everything
# else at INFO is hundreds of lines per start.
ROOT_LEVEL = "WARN"
INFO_LOGGERS = [
    "kafka.server.KafkaRaftServer",
    "kafka.server.BrokerServer",
    "kafka.server.ControllerServer",
    "org.apache.kafka.common.utils.AppInfoParser",
    "org.apache.kafka.controller.ReplicationControlManager",
    "kafka.coordinator.group",  # classic group coordinator (3.x)
    "org.apache.kafka.coordinator.group",  # group coordinator of 4.x
]


def _escape(value: str) -> str:
    # java.util.Properties treats a backslash as an escape character.
    return value.replace("\\", "\\\\")


def render_properties(settings: dict[str, str]) -> str:
    return "".join(f"{key}={_escape(value)}\n" for key, value in settings.items())


def server_settings(port: int, controller_port: int, log_dirs: Path) -> dict[str, str]:
    """All settings of a single-node KRaft broker in combined mode (broker + controller)."""
    return {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.voters": f"{NODE_ID}@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dirs),
        # A missing topic must be an error, not a silently created one-partition topic.
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
        "default.replication.factor": "1",
        **_TEST_SPEED,
    }


@dataclass(frozen=True)
class LoggingConfig:
    filename: str  # written into the data dir
    content: str
    jvm_flag: str  # tells the JVM where the file is


def logging_config(version: str, config_path_dir: Path, log_file: Path) -> LoggingConfig:
    """Logging to ``log_file`` for the log4j generation that ``version`` uses."""
    if uses_log4j2(version):
        path = config_path_dir / "log4j2.properties"
        return LoggingConfig(path.name, _log4j2(log_file), f"-Dlog4j2.configurationFile={path}")
    path = config_path_dir / "log4j.properties"
    return LoggingConfig(path.name, _log4j1(log_file), f"-Dlog4j.configuration=file:{path}")


_PATTERN = "[%d] %p %m (%c)%n"


def _log4j1(log_file: Path) -> str:
    settings = {
        "log4j.rootLogger": f"{ROOT_LEVEL}, file",
        "log4j.appender.file": "org.apache.log4j.FileAppender",
        "log4j.appender.file.File": str(log_file),
        "log4j.appender.file.Append": "true",
        "log4j.appender.file.layout": "org.apache.log4j.PatternLayout",
        "log4j.appender.file.layout.ConversionPattern": _PATTERN,
    }
    settings.update({f"log4j.logger.{name}": "INFO" for name in INFO_LOGGERS})
    return render_properties(settings)


def _log4j2(log_file: Path) -> str:
    settings = {
        "status": "warn",
        "name": "esep-localkafka",
        # log4j2's own shutdown hook would stop logging while Kafka is still shutting
        # down; its last lines would then go to stderr. The file appender flushes every
        # line, so nothing is lost without the hook.
        "shutdownHook": "disable",
        "appender.file.type": "File",
        "appender.file.name": "FILE",
        "appender.file.fileName": str(log_file),
        "appender.file.append": "true",
        "appender.file.layout.type": "PatternLayout",
        "appender.file.layout.pattern": _PATTERN,
        "rootLogger.level": ROOT_LEVEL,
        "rootLogger.appenderRef.file.ref": "FILE",
    }
    for i, name in enumerate(INFO_LOGGERS):
        settings[f"logger.info{i}.name"] = name
        settings[f"logger.info{i}.level"] = "INFO"
    return render_properties(settings)
