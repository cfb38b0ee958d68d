"""Static checks of the Docker files: docker-compose.yml, Dockerfile and .dockerignore, and of the
monitoring files the compose stack mounts (Prometheus' config and rules, Grafana's provisioning).

No Docker engine is needed: the files are parsed and compared with what the application really
reads (environment variables found in its source, its command line, its default web port).
`docker compose config` runs too when the compose plugin is installed.
"""
from __future__ import annotations

import ast
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path, PurePosixPath

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read docker-compose.yml (test extra)")

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SOURCE_PACKAGES = ("streams", "tables", "monitoring", "tools", "tools/localkafka")
ENV_NAME = re.compile(r"ESEP_[A-Z0-9]+(?:_[A-Z0-9]+)*")
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+")
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
KAFKA_REQUIRED_ENV = (
    "KAFKA_NODE_ID", "KAFKA_PROCESS_ROLES", "KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS",
    "KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_CONTROLLER_LISTENER_NAMES",
    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "KAFKA_INTER_BROKER_LISTENER_NAME",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "KAFKA_AUTO_CREATE_TOPICS_ENABLE",
    "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "CLUSTER_ID",
)


# ---- readers -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "no services in docker-compose.yml"
    return data


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    out, pending = [], ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, args = full.partition(" ")
            out.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return out


def runtime_stage(instructions):
    """The instructions of the last stage (the image that is shipped)."""
    starts = [i for i, (kw, _) in enumerate(instructions) if kw == "FROM"]
    assert starts, "Dockerfile has no FROM"
    return instructions[starts[-1]:]


def dockerfile_env(instructions) -> dict[str, str]:
    env: dict[str, str] = {}
    for kw, args in runtime_stage(instructions):
        if kw != "ENV":
            continue
        parts = shlex.split(args)
        if parts and "=" not in parts[0]:  # legacy `ENV KEY value`
            env[parts[0]] = " ".join(parts[1:])
        else:
            for part in parts:
                key, _, value = part.partition("=")
                env[key] = value
    return env


def env_of(service: dict) -> dict[str, str]:
    """A service's `environment:` in either the mapping or the list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {k: v for k, v in pairs}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def effective_env(service: dict) -> dict[str, str]:
    """What the container sees: the image's ENV for our own image, overridden by compose."""
    env = dockerfile_env(dockerfile_instructions()) if "build" in service else {}
    env.update(env_of(service))
    return env


def command_of(service: dict) -> list[str]:
    cmd = service.get("command")
    if cmd is None:
        return ["worker"]  # the Dockerfile's CMD
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def worker_services(services) -> dict[str, dict]:
    return {n: s for n, s in services.items() if "build" in s and command_of(s)[:1] == ["worker"]}


def host_ports(entry) -> tuple[str, str, str]:
    """(host ip, host port, container port) of one `ports:` entry, short or long syntax."""
    if isinstance(entry, dict):
        return str(entry.get("host_ip", "")), str(entry.get("published", "")), str(entry.get("target", ""))
    text = str(entry).split("/", 1)[0]
    if text.startswith("["):  # [::1]:8080:80
        ip, _, rest = text[1:].partition("]:")
        host, _, container = rest.partition(":")
        return ip, host, container
    parts = text.rsplit(":", 2)
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return "", "", parts[0]


def volume_sources(service: dict) -> list[tuple[str, str]]:
    """(source, target) of every volume mount (short or long syntax)."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            out.append((str(v.get("source", "")), str(v.get("target", ""))))
        else:
            parts = str(v).split(":")
            out.append((parts[0], parts[1]) if len(parts) > 1 else ("", parts[0]))
    return out


def is_named(source: str) -> bool:
    return bool(source) and not source.startswith(("/", ".", "~", "$"))


def depends_of(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {k: (v or {}).get("condition", "service_started") for k, v in deps.items()}


def app_env_names() -> set[str]:
    """Every ESEP_* environment variable the app reads: string literals that are exactly a
    variable name in its source, plus ESEP_TOPIC_<NAME> generated from DEFAULT_TOPICS."""
    from streams.settings import DEFAULT_TOPICS

    names: set[str] = set()
    for package in SOURCE_PACKAGES:
        for path in sorted((ROOT / package).glob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.fullmatch(node.value):
                    names.add(node.value)
    names |= {f"ESEP_TOPIC_{name.upper()}" for name in DEFAULT_TOPICS}
    return names


def pinned_image(image: str) -> bool:
    if "@sha256:" in image:
        return re.search(r"@sha256:[0-9a-f]{64}$", image) is not None
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:  # no tag at all (a registry port is not a tag)
        return False
    return tag != "latest" and EXACT_VERSION.match(tag) is not None


def project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


# ---- the compose file ----------------------------------------------------------------------------

def test_compose_parses_without_obsolete_version_key(compose):
    assert "version" not in compose, "the Compose spec has no `version:` key (Compose v2 warns about it)"
    for name, service in compose["services"].items():
        assert isinstance(service, dict), f"service {name} is not a mapping"
        assert "image" in service or "build" in service, f"service {name} has neither image nor build"


def test_every_image_is_pinned(services):
    version = project_version()
    for name, service in services.items():
        image = service.get("image")
        if "build" in service:
            context = service["build"]["context"] if isinstance(service["build"], dict) else service["build"]
            assert (ROOT / context).resolve() == ROOT, f"{name}: build context is not the project root"
            if image is not None:
                assert image in (f"esep:{version}", f"esep-tools:{version}"), (
                    f"{name}: our image is tagged {image!r}; keep it esep:{version} (pyproject's version)")
                assert (image == f"esep-tools:{version}") == (service["build"].get("target") == "simulator"), (
                    f"{name}: only the simulator target (engine + tools) is tagged esep-tools")
        else:
            assert image, f"{name}: no image"
            assert not image.startswith("esep"), f"{name}: uses our image {image!r} without `build:`"
            assert pinned_image(image), f"{name}: image {image!r} is not pinned to an exact version or digest"


def test_env_scanner_finds_the_known_variables():
    names = app_env_names()
    for expected in ("ESEP_BROKER", "ESEP_DATA_DIR", "ESEP_WORKER_ID", "ESEP_WEB_PORT", "ESEP_LOG_FORMAT",
                     "ESEP_SESSION_TIMEOUT_S", "ESEP_TOPIC_CREDIT_NOTIFICATIONS"):
        assert expected in names
    assert "ESEP_TOPIC_" not in names


def test_every_esep_variable_is_read_by_the_app(services):
    known = app_env_names()
    unknown = {
        f"{name}: {key}"
        for name, service in services.items()
        for key in env_of(service)
        if key.startswith("ESEP_") and key not in known
    }
    assert not unknown, f"ESEP_* variables the app never reads (typo or removed setting): {sorted(unknown)}"
    docker_env = {k for k in dockerfile_env(dockerfile_instructions()) if k.startswith("ESEP_")}
    assert docker_env <= known, f"Dockerfile ENV the app never reads: {sorted(docker_env - known)}"


def test_published_ports_bind_loopback_and_are_unique(services):
    seen: dict[str, str] = {}
    for name, service in services.items():
        for entry in service.get("ports") or []:
            ip, host, container = host_ports(entry)
            assert ip == "127.0.0.1", f"{name}: port {entry!r} is not bound to 127.0.0.1 only"
            assert host.isdigit() and container.isdigit(), f"{name}: port {entry!r} needs a fixed host port"
            assert host not in seen, f"host port {host} published by both {seen[host]} and {name}"
            seen[host] = name


def test_named_volumes_are_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for source, target in volume_sources(service):
            assert target.startswith("/"), f"{name}: volume target {target!r} is not absolute"
            if is_named(source):
                assert source in declared, f"{name}: volume {source!r} is not declared under top-level volumes"


def test_depends_on_targets_exist_and_can_satisfy_the_condition(services):
    docker_health = any(kw == "HEALTHCHECK" and args.upper() != "NONE"
                        for kw, args in runtime_stage(dockerfile_instructions()))
    for name, service in services.items():
        for target, condition in depends_of(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            assert target != name, f"{name} depends on itself"
            assert condition in DEPENDS_CONDITIONS, f"{name}: unknown depends_on condition {condition!r}"
            if condition == "service_healthy":
                check = services[target].get("healthcheck") or {}
                has_check = not check.get("disable") and (
                    "test" in check or ("build" in services[target] and docker_health))
                assert has_check, f"{name} waits for {target} to be healthy, but {target} has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[target].get("restart", "no") == "no", (
                    f"{name} waits for {target} to complete, but {target} restarts")


def test_startup_order(services):
    assert depends_of(services["topics"]).get("kafka") == "service_healthy"
    assert command_of(services["topics"]) == ["topics", "create"]
    assert str(services["topics"].get("restart")) == "no"
    for name in worker_services(services):
        assert depends_of(services[name]).get("topics") == "service_completed_successfully", name


def test_workers_have_distinct_ids_and_their_own_state(services):
    workers = worker_services(services)
    assert len(workers) >= 2, "the stack is meant to show at least two workers"
    ids, app_ids, brokers, volumes = {}, set(), set(), {}
    for name, service in workers.items():
        env = effective_env(service)
        worker_id = env.get("ESEP_WORKER_ID")
        assert worker_id, f"{name}: ESEP_WORKER_ID is not set (the hostname would change on every recreate)"
        assert worker_id not in ids, f"{name} and {ids[worker_id]} share ESEP_WORKER_ID={worker_id}"
        ids[worker_id] = name
        app_ids.add(env.get("ESEP_APP_ID", "esep"))
        brokers.add(env.get("ESEP_BROKER"))
        data_dir = env.get("ESEP_DATA_DIR")
        assert data_dir, f"{name}: ESEP_DATA_DIR is not set in the image or the service"
        mounts = [src for src, target in volume_sources(service) if target.rstrip("/") == data_dir.rstrip("/")]
        assert mounts and is_named(mounts[0]), f"{name}: no named volume mounted at ESEP_DATA_DIR={data_dir}"
        assert mounts[0] not in volumes, f"{name} and {volumes[mounts[0]]} share the volume {mounts[0]}"
        volumes[mounts[0]] = name
        assert service.get("restart") == "unless-stopped", f"{name}: restart should be unless-stopped"
        assert float(env.get("ESEP_SESSION_TIMEOUT_S", "60")) <= 10, f"{name}: session timeout above 10 s"
    assert len(app_ids) == 1, f"workers of one group need one ESEP_APP_ID, found {app_ids}"
    assert len(brokers) == 1 and None not in brokers, f"workers need the same ESEP_BROKER, found {brokers}"


def test_our_services_run_valid_esep_commands(services):
    from streams.cli import parser

    checked = []
    for name, service in services.items():
        if "build" not in service:
            continue
        try:
            args = parser().parse_args(command_of(service))
        except SystemExit:
            pytest.fail(f"{name}: `esep {' '.join(command_of(service))}` is not a valid esep command")
        assert callable(getattr(args, "func", None)), f"{name}: `esep {' '.join(command_of(service))}` runs nothing"
        checked.append(name)
    assert "simulator" in checked and worker_services(services), "the workers and the simulator are built here"


def test_simulator_is_optional(services):
    simulator = services.get("simulator")
    assert simulator is not None
    assert simulator.get("profiles") == ["simulator"], "the simulator must not start with a plain `up`"
    assert command_of(simulator)[0] == "simulate", "the simulator feeds the topics the workers consume"
    assert effective_env(simulator).get("ESEP_BROKER"), "the simulator needs ESEP_BROKER"


def test_kafka_service(compose, services):
    from tools.localkafka import DEFAULT_VERSION

    kafka = services["kafka"]
    assert kafka["image"] == f"apache/kafka:{DEFAULT_VERSION}", "the compose broker should match `esep kafka start`"
    env = env_of(kafka)
    missing = [k for k in KAFKA_REQUIRED_ENV if k not in env]
    assert not missing, f"kafka: missing {missing}"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].lower() == "false"
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert env[key] == "1", f"kafka: {key} must be 1 on a single node"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"]), "CLUSTER_ID: 16 bytes, base64url, 22 characters"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    data_dir = env.get("KAFKA_LOG_DIRS", "/var/lib/kafka/data")
    mounts = [src for src, target in volume_sources(kafka) if target == data_dir]
    assert mounts and is_named(mounts[0]), f"kafka: no named volume at its log dir {data_dir}"
    test = " ".join(map(str, (kafka.get("healthcheck") or {}).get("test", [])))
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in test, "kafka: healthcheck must ask the broker itself"
    # The address our services use must be one the broker advertises.
    advertised = {part.split("://", 1)[1] for part in env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    for name, service in services.items():
        broker = env_of(service).get("ESEP_BROKER")
        if broker:
            for address in broker.split(","):
                assert address.split("://", 1)[-1] in advertised, (
                    f"{name}: ESEP_BROKER={broker} is not among the advertised listeners {sorted(advertised)}")


def test_worker_web_server_answers_on_the_published_port(services):
    """The app binds its web server to 127.0.0.1 by default; in a container a published port
    reaches the container's own interface, so workers that publish one bind all interfaces."""
    from streams.settings import Settings

    for name, service in worker_services(services).items():
        if service.get("ports"):
            env = effective_env(service)
            assert env.get("ESEP_WEB_BIND") == "0.0.0.0", (
                f"{name} publishes a port but its web server would listen on 127.0.0.1 only")
            assert Settings.from_env(env).web_bind == "0.0.0.0"


# ---- the Dockerfile and its context ---------------------------------------------------------------

def test_dockerfile_base_images_are_pinned():
    instructions = dockerfile_instructions()
    stages: set[str] = set()
    for kw, args in instructions:
        if kw != "FROM":
            continue
        words = [w for w in args.split() if not w.startswith("--")]
        image = words[0]
        if image.lower() not in stages:  # FROM an earlier stage needs no pin
            assert "$" not in image, f"FROM {image}: resolve build args so the pin is visible here"
            assert pinned_image(image), f"FROM {image} is not pinned to an exact version or digest"
        if len(words) >= 3 and words[1].upper() == "AS":
            stages.add(words[2].lower())


def test_dockerfile_runs_as_non_root_with_healthcheck_and_entrypoint():
    stage = runtime_stage(dockerfile_instructions())
    users = [args for kw, args in stage if kw == "USER"]
    assert users, "the runtime stage has no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"USER {users[-1]} is root"
    health = [args for kw, args in stage if kw == "HEALTHCHECK"]
    assert health and health[-1].upper() != "NONE", "no HEALTHCHECK"
    assert "urllib" in health[-1] and "127.0.0.1" in health[-1], "HEALTHCHECK should probe the web server"
    entry = [args for kw, args in stage if kw == "ENTRYPOINT"]
    assert entry and entry[-1].replace(" ", "") == '["esep"]', "ENTRYPOINT should be the esep command (exec form)"
    cmd = [args for kw, args in stage if kw == "CMD"]
    assert cmd and cmd[-1].replace(" ", "") == '["worker"]'


def test_dockerfile_data_dir_is_a_volume():
    stage = runtime_stage(dockerfile_instructions())
    env = dockerfile_env(dockerfile_instructions())
    data_dir = env.get("ESEP_DATA_DIR")
    assert data_dir, "the image sets no ESEP_DATA_DIR (it would default to ~/.local/share/esep)"
    volumes = " ".join(args for kw, args in stage if kw == "VOLUME")
    assert data_dir in volumes, f"ESEP_DATA_DIR={data_dir} is not declared as a VOLUME"


def test_exposed_port_matches_the_workers_web_port(services, monkeypatch):
    from streams.settings import Settings

    monkeypatch.delenv("ESEP_WEB_PORT", raising=False)
    default_port = Settings.from_env().web_port
    stage = runtime_stage(dockerfile_instructions())
    exposed = {p.split("/")[0] for kw, args in stage if kw == "EXPOSE" for p in args.split()}
    image_port = dockerfile_env(dockerfile_instructions()).get("ESEP_WEB_PORT", str(default_port))
    assert exposed == {image_port}, f"EXPOSE {sorted(exposed)} but the image's ESEP_WEB_PORT is {image_port}"
    for name, service in worker_services(services).items():
        web_port = effective_env(service).get("ESEP_WEB_PORT", str(default_port))
        assert web_port in exposed, f"{name}: ESEP_WEB_PORT={web_port} is not EXPOSEd ({sorted(exposed)})"
        for entry in service.get("ports") or []:
            assert host_ports(entry)[2] == web_port, f"{name}: {entry!r} does not target ESEP_WEB_PORT={web_port}"


def test_dockerignore_keeps_the_sources_and_drops_the_rest():
    patterns = {
        line.strip().rstrip("/").lstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in (".venv", ".git", "**/__pycache__", ".pytest_cache"):
        assert needed in patterns, f".dockerignore should exclude {needed}"
    find = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]["find"]
    packages = {p.rstrip("*").rstrip(".") for p in find["include"]}
    kept = (packages - {"tools"}) | {"pyproject.toml", "README.md"}
    dropped = kept & patterns
    assert not dropped, f".dockerignore drops what `pip install .` needs: {sorted(dropped)}"
    assert "tools" in packages


# ---- monitoring: Prometheus and Grafana ----------------------------------------------------------

def bind_mounts(service: dict) -> list[tuple[Path, str, bool]]:
    """(repo path, container path, read-only) of every bind mount from the project tree."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            if v.get("type", "bind") != "bind":
                continue
            source, target, ro = str(v.get("source", "")), str(v.get("target", "")), bool(v.get("read_only"))
        else:
            parts = str(v).split(":")
            if len(parts) < 2:
                continue
            source, target = parts[0], parts[1]
            ro = len(parts) > 2 and "ro" in parts[2].split(",")
        if source.startswith("."):
            out.append(((ROOT / source).resolve(), target.rstrip("/") or "/", ro))
    return out


def repo_path(service: dict, container_path: str) -> Path | None:
    """The file of the project tree a container path shows, through the service's bind mounts."""
    best = None
    for source, target, _ in bind_mounts(service):
        if container_path == target or container_path.startswith(target + "/"):
            if best is None or len(target) > len(best[1]):
                best = (source, target)
    if best is None:
        return None
    rest = container_path[len(best[1]):].lstrip("/")
    return best[0] / rest if rest else best[0]


def flag(service: dict, name: str, default: str | None = None) -> str | None:
    """The value of `--name=value` (or `--name value`) in a service's command."""
    cmd = command_of(service) if service.get("command") is not None else []
    for i, arg in enumerate(cmd):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(cmd):
            return cmd[i + 1]
    return default


def network_names(service: dict) -> set[str]:
    """The networks a service joins (Compose's `default` when none is named)."""
    nets = service.get("networks")
    if not nets:
        return {"default"}
    return set(nets) if isinstance(nets, (list, dict)) else {str(nets)}


@pytest.fixture(scope="module")
def prometheus_config(services) -> tuple[dict, Path]:
    prometheus = services["prometheus"]
    config_path = flag(prometheus, "config.file", "/etc/prometheus/prometheus.yml")
    source = repo_path(prometheus, config_path)
    assert source is not None and source.is_file(), f"prometheus: {config_path} is not mounted from the repo"
    return yaml.safe_load(source.read_text(encoding="utf-8")), source


def test_bind_mounts_exist_in_the_repo_and_are_read_only(services):
    for name, service in services.items():
        for source, target, ro in bind_mounts(service):
            assert source.exists(), f"{name}: mounts {source.relative_to(ROOT)} which is not in the repo"
            assert source.is_relative_to(ROOT), f"{name}: mounts {source} from outside the project"
            assert ro, f"{name}: {source.relative_to(ROOT)} -> {target} should be mounted read-only (:ro)"


def test_prometheus_service_loads_the_repo_config_and_rules(services, prometheus_config):
    prometheus = services["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus:v2."), (
        "rules are checked with Debian's promtool 2.x: keep the server on 2.x or re-check them")
    config, source = prometheus_config
    assert source == ROOT / "monitoring" / "prometheus" / "prometheus.yml"
    container_dir = PurePosixPath(flag(prometheus, "config.file", "/etc/prometheus/prometheus.yml")).parent
    rule_files = config.get("rule_files") or []
    assert rule_files, "prometheus.yml loads no rule files"
    mounted_rules = set()
    for pattern in rule_files:
        assert not any(c in pattern for c in "*?["), f"rule_files: name the file, not a glob ({pattern})"
        in_container = str(container_dir / pattern)  # relative paths are relative to the config file
        file = repo_path(prometheus, in_container)
        assert file is not None and file.is_file(), f"prometheus: rule file {in_container} is not mounted"
        mounted_rules.add(file)
    assert ROOT / "monitoring" / "prometheus" / "rules.yml" in mounted_rules
    storage = flag(prometheus, "storage.tsdb.path", "/prometheus")
    assert any(is_named(src) and target.rstrip("/") == storage.rstrip("/")
               for src, target in volume_sources(prometheus)), f"prometheus: no named volume at {storage}"


def test_prometheus_scrapes_every_worker_on_its_web_port(services, prometheus_config):
    from streams.settings import Settings

    config, _ = prometheus_config
    jobs = {job["job_name"]: job for job in config.get("scrape_configs") or []}
    assert "esep" in jobs, "no scrape job named esep (the alert rules select job=\"esep\")"
    job = jobs["esep"]
    assert job.get("metrics_path", "/metrics") == "/metrics", "the workers serve /metrics"
    assert job.get("scheme", "http") == "http"
    targets = {t for sc in job.get("static_configs") or [] for t in sc.get("targets") or []}
    default_port = Settings.from_env({}).web_port
    expected = set()
    for name, service in worker_services(services).items():
        host = service.get("hostname", name)
        port = effective_env(service).get("ESEP_WEB_PORT", str(default_port))
        expected.add(f"{host}:{port}")
        assert network_names(service) & network_names(services["prometheus"]), (
            f"prometheus shares no network with {name}")
    assert targets == expected, (
        f"job esep scrapes {sorted(targets)}, the compose workers answer at {sorted(expected)}")


def test_grafana_service_provisions_the_datasource_and_dashboard(services):
    grafana, prometheus = services["grafana"], services["prometheus"]
    env = env_of(grafana)
    provisioning = env.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning")
    datasources_dir = repo_path(grafana, f"{provisioning}/datasources")
    providers_dir = repo_path(grafana, f"{provisioning}/dashboards")
    assert datasources_dir and datasources_dir.is_dir(), f"grafana: {provisioning}/datasources is not mounted"
    assert providers_dir and providers_dir.is_dir(), f"grafana: {provisioning}/dashboards is not mounted"

    # The datasource points at the prometheus service's listen port, by its compose name.
    datasources = [ds for f in sorted(datasources_dir.glob("*.y*ml"))
                   for ds in yaml.safe_load(f.read_text(encoding="utf-8")).get("datasources") or []]
    prom = [ds for ds in datasources if ds.get("type") == "prometheus"]
    assert len(prom) == 1, f"expected one prometheus datasource, found {len(prom)}"
    listen_port = flag(prometheus, "web.listen-address", ":9090").rsplit(":", 1)[1]
    assert prom[0]["url"] == f"http://prometheus:{listen_port}", prom[0]["url"]
    assert prom[0].get("uid"), "the datasource needs a fixed uid: the dashboard refers to it"

    # Every dashboard provider reads a folder mounted from the repo, holding dashboards that use that uid.
    providers = [p for f in sorted(providers_dir.glob("*.y*ml"))
                 for p in yaml.safe_load(f.read_text(encoding="utf-8")).get("providers") or []]
    assert providers, "no dashboard provider"
    dashboards = []
    for provider in providers:
        assert provider.get("type", "file") == "file"
        folder = repo_path(grafana, provider["options"]["path"].rstrip("/"))
        assert folder and folder.is_dir(), f"grafana: dashboards folder {provider['options']['path']} is not mounted"
        dashboards += sorted(folder.glob("*.json"))
    assert ROOT / "monitoring" / "grafana" / "dashboards" / "esep.json" in dashboards
    for path in dashboards:
        text = path.read_text(encoding="utf-8")
        uids = set(re.findall(r'"type":\s*"prometheus",\s*"uid":\s*"([^"]+)"', text))
        assert uids == {prom[0]["uid"]}, f"{path.name} uses datasource uids {uids}, provisioned: {prom[0]['uid']}"
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert repo_path(grafana, home) in dashboards, f"grafana: home dashboard {home} is not a mounted dashboard"

    # No password in the file: it comes from the environment, with a default meant for a developer only.
    password = env.get("GF_SECURITY_ADMIN_PASSWORD", "")
    assert re.fullmatch(r"\$\{[A-Z_]+:-[^}]+\}", password), (
        "GF_SECURITY_ADMIN_PASSWORD should be ${VARIABLE:-dev default}, not a literal")
    assert env.get("GF_AUTH_ANONYMOUS_ENABLED", "false") == "false"
    assert depends_of(grafana).get("prometheus") in ("service_started", "service_healthy")


# ---- Docker's own parser, when it is installed -----------------------------------------------------

def test_docker_compose_config_accepts_the_file():
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on PATH")
    version = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=60)
    if version.returncode != 0:
        pytest.skip("the docker compose plugin is not installed: " + (version.stderr or version.stdout).strip().splitlines()[0][:200])
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "--profile", "simulator", "config", "--quiet"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    if result.returncode != 0 and re.search(r"Cannot connect to the Docker daemon|docker daemon", result.stderr, re.I):
        pytest.skip(f"docker compose config needs an engine here: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, f"docker compose config rejected the file:\n{result.stderr}"
