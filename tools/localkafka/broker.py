"""Start, stop and inspect a single-node Apache Kafka broker (KRaft, combined mode).

Everything a broker owns lives in its data dir:

- ``server.properties``, ``log4j.properties`` / ``log4j2.properties``: generated on every start
- ``logs/``: Kafka's data (``log.dirs``), formatted once
- ``ports.json``: the ports of the formatted storage, reused on the next start
- ``broker.json``: the running process (removed by :func:`stop`)
- ``broker.log`` (Kafka's log4j output), ``broker.out`` (JVM stdout/stderr)
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from .config import logging_config, render_properties, server_settings
from .errors import BrokerError
from .jars import ensure_jars
from .locking import exclusive
from .ports import pick_free_ports, port_answers, port_is_free
from tools.process import Child

from .process import is_gone, is_kafka_process, terminate
from .state import (
    PORTS_FILE,
    BrokerInfo,
    clear_state,
    read_ports,
    read_state,
    write_ports,
    write_state,
)
from .versions import DEFAULT_VERSION

READY_TIMEOUT_S = 90.0
FORMAT_TIMEOUT_S = 120.0
POLL_INTERVAL_S = 0.2
TAIL_LINES = 25

Log = Callable[[str], None]


def _props_path(data_dir: Path) -> Path:
    return data_dir / "server.properties"


def _log_path(data_dir: Path) -> Path:
    return data_dir / "broker.log"


def _out_path(data_dir: Path) -> Path:
    return data_dir / "broker.out"


def _kafka_dir(data_dir: Path) -> Path:
    return data_dir / "logs"


# --------------------------------------------------------------------------- status


def _recorded_process(data_dir: Path) -> BrokerInfo | None:
    """The broker in the state file if its process still runs (ready or not)."""
    info = read_state(data_dir)
    if info is None or not is_kafka_process(info.pid, _props_path(data_dir)):
        return None
    return info


def status(data_dir: Path) -> BrokerInfo | None:
    """The broker of ``data_dir`` if its process runs and its port accepts connections."""
    info = _recorded_process(Path(data_dir).resolve())
    if info is None or not port_answers(info.port):
        return None
    return info


# --------------------------------------------------------------------------- start


def start(
    data_dir: Path,
    version: str = DEFAULT_VERSION,
    port: int | None = None,
    log: Log = print,
    heap: str = "512m",
) -> BrokerInfo:
    """Start (or reuse) the broker of ``data_dir`` and return once it serves metadata."""
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # Two callers starting the same data dir at once must not launch two JVMs: the
    # second waits here and then finds the first one's broker.
    with exclusive(data_dir / ".start.lock"):
        running = _recorded_process(data_dir)
        if running is not None:
            return _reuse(running, version, port)
        return _start_new(data_dir, version, port, log, heap)


def _start_new(data_dir: Path, version: str, port: int | None, log: Log, heap: str) -> BrokerInfo:
    java = _require_java()
    libs = ensure_jars(version, log=log)
    port, controller_port = _choose_ports(data_dir, port)
    log_flag = _write_configs(data_dir, version, port, controller_port)
    _format_once(java, libs, data_dir, log_flag, log)

    started = time.monotonic()
    proc = _launch(java, libs, data_dir, log_flag, heap)
    info = BrokerInfo(
        port=port,
        controller_port=controller_port,
        pid=proc.pid,
        version=version,
        data_dir=data_dir,
        log_path=_log_path(data_dir),
    )
    write_state(info)
    try:
        _wait_ready(info, proc, READY_TIMEOUT_S)
    except BaseException:
        # Never leave a half-started JVM behind (also on Ctrl-C).
        terminate(proc.pid, timeout=10)
        clear_state(data_dir)
        raise
    log(
        f"Apache Kafka {version} ready at {info.bootstrap} in {time.monotonic() - started:.1f} s "
        f"(pid {info.pid}, log {info.log_path})"
    )
    return info


def _reuse(running: BrokerInfo, version: str, port: int | None) -> BrokerInfo:
    if running.version != version or (port is not None and port != running.port):
        raise BrokerError(
            f"a Kafka {running.version} broker already runs for {running.data_dir} "
            f"(pid {running.pid}, {running.bootstrap}); you asked for Kafka {version}"
            f"{f' on port {port}' if port is not None else ''}. "
            "Stop it first (localkafka.stop) or use another data dir."
        )
    # It may still be starting (launched by another process): wait rather than launch twice.
    _wait_ready(running, None, READY_TIMEOUT_S)
    return running


def _require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise BrokerError(
            "java is not on PATH; the Kafka broker needs a JDK 17 or newer. "
            "Install one (e.g. `apt-get install openjdk-17-jre-headless`) and retry."
        )
    return java


def _choose_ports(data_dir: Path, port: int | None) -> tuple[int, int]:
    """Ports for this start: the remembered ones if any, else fresh free ones.

    The controller port must stay the same across restarts because
    ``controller.quorum.voters`` names it and the formatted storage belongs to that quorum.
    """
    remembered = read_ports(data_dir)
    if remembered is None:
        fresh = pick_free_ports(2)
        chosen = (port if port is not None else fresh[0], fresh[1])
    else:
        chosen = (port if port is not None else remembered[0], remembered[1])
    for role, candidate in zip(("client", "controller"), chosen):
        if not port_is_free(candidate):
            raise BrokerError(
                f"the {role} port {candidate} for {data_dir} is in use by another process. "
                f"Free it (see `ss -ltnp 'sport = :{candidate}'`), or, if this data dir's "
                f"topics are disposable, delete {data_dir / PORTS_FILE} (client port) or the "
                "whole data dir to start over on new ports."
            )
    write_ports(data_dir, *chosen)
    return chosen


def _write_configs(data_dir: Path, version: str, port: int, controller_port: int) -> str:
    """Write server.properties and the logging config; return the JVM logging flag."""
    settings = server_settings(port, controller_port, _kafka_dir(data_dir))
    _props_path(data_dir).write_text(render_properties(settings))
    logging = logging_config(version, data_dir, _log_path(data_dir))
    (data_dir / logging.filename).write_text(logging.content)
    return logging.jvm_flag


def new_cluster_id() -> str:
    """16 random bytes, URL-safe base64 without padding (22 characters), as Kafka expects."""
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


def _format_once(java: str, libs: Path, data_dir: Path, log_flag: str, log: Log) -> None:
    """Format the storage unless Kafka's meta.properties says it already is."""
    if (_kafka_dir(data_dir) / "meta.properties").exists():
        return
    cluster_id = new_cluster_id()
    cmd = [
        java, log_flag, "-cp", f"{libs}/*", "kafka.tools.StorageTool",
        # `=` form: a URL-safe id may begin with "-", which argparse would take for an option.
        "format", f"--cluster-id={cluster_id}", "-c", str(_props_path(data_dir)),
    ]
    try:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=FORMAT_TIMEOUT_S, cwd=data_dir,
        )
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(
            f"formatting the Kafka storage in {_kafka_dir(data_dir)} took over "
            f"{FORMAT_TIMEOUT_S:.0f} s; check the machine's load and retry."
        ) from exc
    if proc.returncode != 0:
        raise BrokerError(
            f"formatting the Kafka storage in {_kafka_dir(data_dir)} failed "
            f"(exit {proc.returncode}):\n{_last_lines(proc.stdout)}\n"
            f"If the data dir is disposable, delete {data_dir} and retry."
        )
    log(f"formatted Kafka storage in {_kafka_dir(data_dir)} (cluster id {cluster_id})")


def _launch(java: str, libs: Path, data_dir: Path, log_flag: str, heap: str) -> subprocess.Popen:
    cmd = [
        java, f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true", log_flag,
        "-cp", f"{libs}/*", "kafka.Kafka", str(_props_path(data_dir)),
    ]
    # broker.out accumulates across starts; the banner marks where this one begins. The broker runs
    # in a session of its own: Ctrl-C in the caller's terminal does not reach it (stop() does).
    banner = f"=== localkafka: {' '.join(cmd)} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
    child = Child(cmd, _out_path(data_dir), cwd=data_dir, name="kafka").start(banner=banner)
    return child.proc


# --------------------------------------------------------------------------- readiness


def _wait_ready(info: BrokerInfo, proc: subprocess.Popen | None, timeout: float) -> None:
    """Return once a metadata request succeeds; raise BrokerError if the broker dies or is late.

    An open port is not enough: the broker accepts connections before it can serve requests.
    """
    deadline = time.monotonic() + timeout
    while True:
        if _has_exited(info, proc):
            code = f" with exit code {proc.returncode}" if proc is not None else ""
            raise BrokerError(
                f"the Kafka {info.version} broker (pid {info.pid}) exited{code} before it was "
                f"ready.\n{_diagnostics(info.data_dir)}"
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerError(
                f"the Kafka {info.version} broker (pid {info.pid}) did not answer a metadata "
                f"request on {info.bootstrap} within {timeout:.0f} s.\n"
                f"{_diagnostics(info.data_dir)}"
            )
        if port_answers(info.port) and metadata_ok(info.bootstrap, min(remaining, 5.0)):
            return
        time.sleep(POLL_INTERVAL_S)


def _has_exited(info: BrokerInfo, proc: subprocess.Popen | None) -> bool:
    if proc is not None:
        return proc.poll() is not None
    return is_gone(info.pid)


def metadata_ok(bootstrap: str, timeout: float) -> bool:
    """Whether the broker at ``bootstrap`` answers a metadata request within ``timeout``."""
    from kafka import KafkaAdminClient  # imported late: only readiness needs a Kafka client

    timeout_ms = max(int(timeout * 1000), 500)
    try:
        # Short reconnect backoffs: kafka-python's defaults add seconds of idle waiting.
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="esep-localkafka-ready",
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
            reconnect_backoff_ms=50,
            reconnect_backoff_max_ms=200,
        )
    except Exception:
        return False
    try:
        admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        admin.close()


def _last_lines(text: str, count: int = TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-count:])


def _tail(path: Path) -> str:
    try:
        return _last_lines(path.read_text(errors="replace")) or "(empty)"
    except FileNotFoundError:
        return "(missing)"


def _diagnostics(data_dir: Path) -> str:
    return (
        f"--- tail of {_out_path(data_dir)}:\n{_tail(_out_path(data_dir))}\n"
        f"--- tail of {_log_path(data_dir)}:\n{_tail(_log_path(data_dir))}\n"
        "Look for the first ERROR above; remove the data dir if it is disposable and corrupt."
    )


# --------------------------------------------------------------------------- stop


def stop(data_dir: Path, timeout: float = 30) -> bool:
    """Stop the broker of ``data_dir``; return whether a running broker was stopped.

    SIGTERM first (clean shutdown), SIGKILL after ``timeout`` seconds. A pid that no
    longer belongs to this data dir's broker is never signalled.
    """
    data_dir = Path(data_dir).resolve()
    info = read_state(data_dir)
    if info is None:
        return False
    stopped = is_kafka_process(info.pid, _props_path(data_dir))
    if stopped:
        terminate(info.pid, timeout)
    clear_state(data_dir)
    return stopped
