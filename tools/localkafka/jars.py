"""Resolve the Apache Kafka broker jars from Maven Central into a per-version cache.

Layout: ``<cache root>/<version>/libs/*.jar`` plus a marker file written last.
The download happens in a temporary sibling directory and is renamed into place,
so an aborted or concurrent run never leaves a half-filled ``libs`` behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

from .errors import BrokerError
from .locking import exclusive
from .versions import uses_log4j2

CACHE_ENV = "ESEP_KAFKA_CACHE"
MARKER = ".complete"
MVN_TIMEOUT_S = 900
# Pinned so the resolution does not depend on the Maven installation's default plugin version.
DEPENDENCY_PLUGIN_VERSION = "3.8.1"

# The kafka_2.13 artifact brings every broker module transitively but no logging
# backend; without one the broker runs silently.
_LOG4J1_BACKEND = [
    ("org.slf4j", "slf4j-reload4j", "1.7.36"),
    ("ch.qos.reload4j", "reload4j", "1.2.25"),
]
_LOG4J2_BACKEND = [
    # Its pom declares log4j-api and log4j-core with runtime scope, so both come
    # transitively (checked for 2.24.3); no separate log4j-core entry is needed.
    ("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3"),
]


def default_cache_root() -> Path:
    """``$ESEP_KAFKA_CACHE``, else ``$XDG_CACHE_HOME/esep/kafka`` (``~/.cache/esep/kafka``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "esep" / "kafka"


def libs_dir(version: str, cache_dir: Path | None = None) -> Path:
    """Where the jars of ``version`` live (whether or not they are downloaded yet)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_root()
    return root / version / "libs"


def is_complete(libs: Path) -> bool:
    return (libs / MARKER).is_file()


def dependencies(version: str) -> list[tuple[str, str, str]]:
    """Maven coordinates (group, artifact, version) to declare for a broker of ``version``."""
    backend = _LOG4J2_BACKEND if uses_log4j2(version) else _LOG4J1_BACKEND
    return [("org.apache.kafka", "kafka_2.13", version), *backend]


def render_pom(version: str) -> str:
    """A throwaway pom whose only purpose is ``dependency:copy-dependencies``."""
    deps = "\n".join(
        "    <dependency>"
        f"<groupId>{escape(g)}</groupId><artifactId>{escape(a)}</artifactId>"
        f"<version>{escape(v)}</version></dependency>"
        for g, a, v in dependencies(version)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>esep.localkafka</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>{escape(version)}</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
  </dependencies>
  <build>
    <pluginManagement>
      <plugins>
        <plugin>
          <groupId>org.apache.maven.plugins</groupId>
          <artifactId>maven-dependency-plugin</artifactId>
          <version>{DEPENDENCY_PLUGIN_VERSION}</version>
        </plugin>
      </plugins>
    </pluginManagement>
  </build>
</project>
"""


def ensure_jars(version: str, cache_dir: Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Return the directory holding the broker jars of ``version``, downloading them once.

    ``cache_dir`` replaces the cache root (default: :func:`default_cache_root`);
    the jars go to ``<root>/<version>/libs``.
    """
    libs = libs_dir(version, cache_dir)
    if is_complete(libs):
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    # One download per version at a time across processes; a second would only waste time.
    with exclusive(libs.parent / ".lock"):
        # Another process may have finished the download while we waited for the lock.
        if is_complete(libs):
            return libs
        _download(version, libs, log)
    return libs


def _download(version: str, libs: Path, log: Callable[[str], None]) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            "Maven (mvn) is not on PATH; it is needed once to fetch the Kafka jars. "
            "Install it (e.g. `apt-get install maven`) and retry."
        )
    log(f"downloading Apache Kafka {version} jars from Maven Central (once) into {libs} …")
    started = time.monotonic()
    # The temporary directory sits next to the target so the final rename is atomic.
    with tempfile.TemporaryDirectory(prefix=".download-", dir=libs.parent) as tmp:
        staging = Path(tmp) / "libs"
        pom = Path(tmp) / "pom.xml"
        pom.write_text(render_pom(version))
        _run_maven(mvn, pom, staging, version)
        jars = sorted(p.name for p in staging.glob("*.jar"))
        if not any(name.startswith("kafka_2.13-") for name in jars):
            raise BrokerError(
                f"Maven finished but no kafka_2.13 jar for {version} is in {staging}; "
                "check that the version exists on Maven Central."
            )
        elapsed = time.monotonic() - started
        (staging / MARKER).write_text(
            json.dumps({"version": version, "jars": len(jars), "seconds": round(elapsed, 1)})
        )
        _move_into_place(staging, libs)
    size_mb = sum(p.stat().st_size for p in libs.glob("*.jar")) / 1e6
    log(f"Apache Kafka {version}: {len(jars)} jars, {size_mb:.0f} MB in {elapsed:.1f} s")


def _run_maven(mvn: str, pom: Path, staging: Path, version: str) -> None:
    cmd = [
        mvn, "-q", "-B", "-f", str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    try:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=MVN_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(
            f"Maven did not finish fetching Kafka {version} within {MVN_TIMEOUT_S} s; "
            "check the network access to https://repo.maven.apache.org and retry."
        ) from exc
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-30:])
        raise BrokerError(
            f"Maven could not fetch Apache Kafka {version} (exit {proc.returncode}):\n{tail}\n"
            "Check that Maven Central (https://repo.maven.apache.org) is reachable and the "
            f"version exists, or set ESEP_KAFKA_VERSION to another release; then retry. "
            f"Command: {' '.join(cmd)}"
        )


def _move_into_place(staging: Path, libs: Path) -> None:
    # A libs directory without the marker is left over from a manual copy or an old
    # layout; it is not trusted.
    if libs.exists():
        shutil.rmtree(libs)
    os.rename(staging, libs)
