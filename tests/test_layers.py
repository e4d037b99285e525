"""The package's layers (docs/design.md): a module imports only from its own layer or the ones below it.

Every import is checked, the ones inside functions too (an import deferred for start-up time is still a
dependency), by reading the sources, so the test needs none of the optional packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "resnetlab"

# lowest first; a module belongs to the first entry whose name is its top-level module or package
LAYERS: list[tuple[str, set[str]]] = [
    ("core", {"errors", "atomic", "yamlfile", "recipes", "config", "device", "cache", "registry", "info", "tensorfile",
              "checkpoint", "statedict", "runtime", "models", "data", "weights"}),
    ("deploy", {"deploy"}),  # predict, inference backends, export, serve: a trained model, used
    ("analysis", {"analysis"}),  # metrics, reports, Grad-CAM, plots: a trained model, examined
    ("training", {"training"}),
    ("keras", {"keras", "callbacks", "optimizers"}),  # the Keras facade over all of the above
    ("front", {"cli", "__main__", "__init__"}),
]
RANK = {name: rank for rank, (_, names) in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(part for part in parts if part != "__init__") or "__init__"


def imported(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, names) of every resnetlab import in a file."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    if package == ["__init__"]:
        package = []
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.split(".")[0] == "resnetlab":
                target = node.module.partition(".")[2]
            else:
                continue
            found.append((node.lineno, target, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.partition(".")[2], []) for alias in node.names
                      if alias.name.split(".")[0] == "resnetlab"]
    return found


def layer_of(module: str) -> int:
    top = module.split(".")[0] or "__init__"
    if top not in RANK:
        raise AssertionError(f"{module!r} belongs to no layer: add it to LAYERS and to docs/design.md")
    return RANK[top]


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    assert len(SOURCES) > 80
    for path in SOURCES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_layer(path):
    own = layer_of(module_name(path))
    wrong = []
    for line, target, names in imported(path):
        if target == "":  # the package root: its submodules, or its version (defined before any import)
            submodules = [name for name in names if name in RANK]
            if set(names) - {"__version__", *submodules}:
                wrong.append(f"line {line}: from resnetlab import {', '.join(names)}")
            targets = submodules
        else:
            targets = [target]
        wrong += [f"line {line}: {t} ({LAYERS[layer_of(t)][0]})" for t in targets if layer_of(t) > own]
    assert not wrong, f"{module_name(path)} ({LAYERS[own][0]}) imports a higher layer: {wrong}"


def test_the_import_walker_sees_relative_and_deferred_imports(tmp_path):
    # the checker itself: a deferred relative import two packages up must be resolved and caught
    probe = PACKAGE / "data" / "cifar.py"
    targets = {target for _, target, _ in imported(probe)}
    assert "errors" in targets and "data.dataset" in targets
    assert layer_of("deploy.predict") > layer_of("data.dataset")
    assert layer_of("training.loop") > layer_of("analysis.plots")


def test_no_utils_module():
    assert not [p for p in SOURCES if p.stem in ("utils", "util", "helpers", "misc")]


def test_head_and_stem_names_live_in_models_only():
    # the classifier and first-conv names are the models' (classifier_name, first_conv_name); a literal
    # elsewhere would break for a model that names them differently
    leaks = []
    for path in SOURCES:
        if path.relative_to(PACKAGE).parts[0] == "models":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    node.value.rstrip(".") in ("fc", "conv1"):
                leaks.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}")
    assert not leaks, leaks


def test_no_source_file_is_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in SOURCES if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_design_notes_list_every_source_file():
    design = (PACKAGE.parents[1] / "docs" / "design.md").read_text()
    layout = design.split("## Layout", 1)[1].split("```", 2)[1]
    missing = [str(p.relative_to(PACKAGE)) for p in SOURCES
               if str(p.relative_to(PACKAGE)) not in layout and p.name != "__init__.py"]
    assert not missing, f"docs/design.md's layout does not list {missing}"
    named = {word for word in layout.split() if word.endswith(".py")}
    stale = [name for name in named if not (PACKAGE / name).exists()]
    assert not stale, f"docs/design.md lists files that do not exist: {stale}"
