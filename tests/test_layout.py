"""The engine (what the worker's image ships) never imports the tools package."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ("streams", "models", "tables", "monitoring", "rules")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module", "__import__"
        ):
            names.update(a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return names


def test_engine_never_imports_the_tools():
    offenders = []
    files = [p for package in ENGINE for p in (ROOT / package).rglob("*.py")]
    assert len(files) > 20, "the engine's packages were not found"
    for path in files:
        for name in imported_modules(path):
            if name == "tools" or name.startswith("tools.") or name == "localkafka" or name.startswith("localkafka."):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_the_checker_sees_a_tools_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom tools.synthetic import make_orders\n", encoding="utf-8")
    assert "tools.synthetic" in imported_modules(probe)


def test_worker_image_copies_the_engine_and_not_the_tools():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    worker_stage = dockerfile.split("FROM build AS tools-build")[0]
    copied = {line.split()[1] for line in worker_stage.splitlines() if line.startswith("COPY ") and "--from" not in line}
    assert set(ENGINE) <= copied
    assert "tools" not in copied and "." not in copied
    last_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    assert last_stage.startswith("python:") and "AS runtime" in last_stage.splitlines()[0]


def orjson_dumps_calls(path: Path) -> int:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return sum(1 for node in ast.walk(tree)
               if (isinstance(node, ast.Attribute) and node.attr == "dumps"
                   and isinstance(node.value, ast.Name) and node.value.id == "orjson")
               or (isinstance(node, ast.ImportFrom) and node.module == "orjson"
                   and any(alias.name == "dumps" for alias in node.names)))


def test_the_engine_encodes_json_through_rules_json_bytes():
    """orjson's own bytes hold a 4 KiB buffer whatever their length (rules/json_bytes.py): a value
    the worker keeps must be the right-sized copy."""
    files = [p for package in ENGINE for p in (ROOT / package).rglob("*.py")]
    offenders = [str(p.relative_to(ROOT)) for p in files
                 if p != ROOT / "rules" / "json_bytes.py" and orjson_dumps_calls(p)]
    assert offenders == []
    assert orjson_dumps_calls(ROOT / "rules" / "json_bytes.py") == 1
