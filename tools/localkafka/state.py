"""What a data dir remembers about its broker: ``broker.json`` (the running process)
and ``ports.json`` (the ports its storage was formatted for)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .ports import HOST

STATE_FILE = "broker.json"
PORTS_FILE = "ports.json"


@dataclass(frozen=True)
class BrokerInfo:
    """A started broker. ``bootstrap`` is derived from ``port``."""

    port: int
    controller_port: int
    pid: int
    version: str
    data_dir: Path
    log_path: Path
    bootstrap: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "log_path", Path(self.log_path))
        object.__setattr__(self, "bootstrap", f"{HOST}:{self.port}")

    @property
    def url(self) -> str:
        """The broker URL in Faust's notation."""
        return f"kafka://{self.bootstrap}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("bootstrap")
        data["data_dir"] = str(self.data_dir)
        data["log_path"] = str(self.log_path)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BrokerInfo:
        return cls(
            port=int(data["port"]),
            controller_port=int(data["controller_port"]),
            pid=int(data["pid"]),
            version=str(data["version"]),
            data_dir=Path(data["data_dir"]),
            log_path=Path(data["log_path"]),
        )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    # Write-then-rename: a reader never sees a half-written file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def write_state(info: BrokerInfo) -> None:
    _write_json(info.data_dir / STATE_FILE, info.to_json())


def read_state(data_dir: Path) -> BrokerInfo | None:
    """The recorded broker, or None if there is no (readable) state file."""
    data = _read_json(Path(data_dir) / STATE_FILE)
    if data is None:
        return None
    try:
        return BrokerInfo.from_json(data)
    except (KeyError, TypeError, ValueError):
        return None


def clear_state(data_dir: Path) -> None:
    (Path(data_dir) / STATE_FILE).unlink(missing_ok=True)


def write_ports(data_dir: Path, port: int, controller_port: int) -> None:
    _write_json(Path(data_dir) / PORTS_FILE, {"port": port, "controller_port": controller_port})


def read_ports(data_dir: Path) -> tuple[int, int] | None:
    data = _read_json(Path(data_dir) / PORTS_FILE)
    if data is None:
        return None
    try:
        return int(data["port"]), int(data["controller_port"])
    except (KeyError, TypeError, ValueError):
        return None
