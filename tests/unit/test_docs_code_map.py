"""docs/code-map.md keeps up with the tree: every package under streamproc/ and every top-level
module is on it, every module it names exists, and its layer list is the layers contract."""

from __future__ import annotations

import re
import tomllib

from tests.conftest import REPO

PACKAGE = REPO / "streamproc"
DOC = REPO / "docs/code-map.md"
# A module named in the page, with or without the leading `streamproc.`.
_NAMED = re.compile(
    r"`((?:streamproc\.)?(?:adapters|avro_records|cli|config|core|errors|ports|records|scenario|stages|tools"
    r"|worker|producer)(?:\.\w+)*)`"
)


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _must_be_named() -> set[str]:
    """Each package (a folder with an __init__.py) and each module at the top of streamproc/."""
    packages = {
        ".".join(init.parent.relative_to(REPO).parts) for init in PACKAGE.rglob("__init__.py")
    }
    modules = {f"streamproc.{path.stem}" for path in PACKAGE.glob("*.py")}
    return packages | (modules - {"streamproc.__init__"})


def test_every_package_and_top_level_module_is_on_the_code_map() -> None:
    required = _must_be_named()
    assert "streamproc.core.features" in required  # the walk reaches nested packages
    missing = sorted(name for name in required if f"`{name}`" not in _doc())
    assert not missing, f"add these to docs/code-map.md (what they hold): {missing}"


def test_every_module_the_code_map_names_exists() -> None:
    gone = []
    for name in set(_NAMED.findall(_doc())):
        parts = name.removeprefix("streamproc.").split(".")
        path = PACKAGE.joinpath(*parts)
        if not ((path / "__init__.py").is_file() or path.with_suffix(".py").is_file()):
            gone.append(name)
    assert not gone, f"docs/code-map.md names modules that do not exist: {sorted(gone)}"


def test_the_layer_list_is_the_layers_contract() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    contract = [{name.strip() for name in rung.split("|")} for rung in layers]
    section = _doc().split("## Layers", 1)[1].split("\n## ", 1)[0]
    rungs = re.findall(r"^\d+\. (.+)$", section, re.MULTILINE)
    documented = [set(re.findall(r"`([\w.]+)`", rung)) for rung in rungs]
    assert documented == contract, "docs/code-map.md's layers differ from pyproject.toml's"
