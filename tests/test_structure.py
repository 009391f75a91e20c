"""The shape of the engine: wings that import only downward, no import cycles, unique module
names, no module or function past the size that asks to be split (the house style, for the
dashboard too), and the phase settings derived in one place."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "cifar_core"
DASHBOARD = ROOT / "dashboard"
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60

# The wings of the engine, bottom first. A module may import its own place and any place on
# a lower layer, never one beside or above it. A place is a package under cifar_core/ or a
# module at its root.
LAYERS = [
    {"errors", "fileio", "evaluate"},  # no cifar_core imports
    {"runtime"},  # the machine, the environment, the command line
    {"database"},  # the coordination server's URL and its one-line faults
    {"models"},  # the zoo: builders and presets
    {"config"},  # TrainConfig, resolved from a model's recipe
    {"recipes"},  # which named recipe a config is
    {"phases"},  # the phase plan derived from a config
    {"data"},  # sources, splits, images, tf.data
    {"artifacts"},  # the run format: every file name of a run
    {"serving"},  # a stored model loaded, run and exported
    {"analysis"},  # reading finished runs
    {"training"},  # fitting a config and recording it as a run
    {"tuning", "ladders"},  # studies made of trainings
    {"cluster"},  # the job queue and its workers, on PostgreSQL
    {"benchmark"},  # measurements of the above
    {"commands"},  # the command line's subcommands
    {"cli"},
    {"__main__"},
]
COMMAND_SHARED = {"cifar_core.commands.options"}  # what every command may import


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def place(module: str) -> str:
    """The wing a module belongs to: its package under cifar_core, or itself at the root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "cifar_core"


def layer(module_place: str) -> int:
    return next(i for i, places in enumerate(LAYERS) if module_place in places)


def import_graph() -> dict[str, set[str]]:
    """Module -> the cifar_core modules it imports anywhere in its body (lazy imports too)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            else:
                continue
            graph[name] |= {target for target in found if target in modules and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_engine_module_imports_one_that_imports_it_back():
    assert cycles(import_graph()) == []


def test_every_module_is_in_a_wing_of_the_table():
    assert sorted({place(m) for m in _modules()} - set().union(*LAYERS) - {"cifar_core"}) == []


def test_wings_import_only_downward():
    upward = []
    for module, targets in import_graph().items():
        if module == "cifar_core":  # the package's docstring and its lazy public names
            continue
        here = place(module)
        for target in targets:
            there = place(target)
            if target != "cifar_core" and there != here and layer(there) >= layer(here):
                upward.append(f"{module} -> {target}")
    assert sorted(upward) == []


def test_the_layer_rule_finds_an_upward_arrow():
    assert layer(place("cifar_core.data.sources")) < layer(place("cifar_core.training.record"))
    assert layer(place("cifar_core.tuning.study")) == layer(place("cifar_core.ladders.results"))


def test_no_two_modules_of_the_engine_share_a_name():
    names: dict[str, list[str]] = {}
    for module in _modules():
        if module != "cifar_core":
            names.setdefault(module.rsplit(".", 1)[-1], []).append(module)
    assert {name: found for name, found in names.items() if len(found) > 1} == {}


def test_no_command_module_imports_another():
    graph = import_graph()
    crossing = [
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module.startswith("cifar_core.commands.")
        for target in targets
        if target.startswith("cifar_core.commands") and target not in COMMAND_SHARED
    ]
    assert crossing == []


def test_the_engine_names_no_dashboard_file():
    found = [
        f"{path.relative_to(ROOT)}:{i}"
        for path in PACKAGE.rglob("*.py")
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if "dashboard" in line and ('"dashboard"' in line or "dashboard/" in line or "views" in line)
    ]
    assert found == []


def _dashboard_modules() -> dict[str, Path]:
    return {str(path.relative_to(ROOT)): path for path in DASHBOARD.rglob("*.py")}


def test_no_module_or_function_of_the_engine_or_dashboard_is_past_the_size_that_asks_to_be_split():
    too_long = []
    for name, path in {**_modules(), **_dashboard_modules()}.items():
        source = path.read_text()
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name}: {length} lines")
    assert too_long == []


def test_phase_settings_are_derived_only_by_the_phase_plan():
    """Phase 2's own settings are read in phases.py alone (config.py declares them, the
    transfer presets set them, the tuning space may search them)."""
    readers = {
        "cifar_core.phases",
        "cifar_core.config",
        "cifar_core.models.transfer",
        "cifar_core.tuning.space",
    }
    fields = ("fine_tune_lr_factor", "fine_tune_batch_size", "fine_tune_augment", "fine_tune_epochs")
    found = []
    for name, path in _modules().items():
        if name in readers:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in fields:
                found.append(f"{name}: .{node.attr}")
    assert found == []


def test_the_documented_imports_work_and_the_package_alone_loads_no_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, cifar_core\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "from cifar_core import tracking\n"
        "from cifar_core.data import load_cifar10\n"
        "assert tracking.Run and tracking.load_data and load_cifar10\n"
        "assert tracking.__name__ == 'cifar_core.training.tracking'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


# What a comment or docstring must not carry: history belongs to git and the benchmarks pages
# (an issue or stop number, a date, a run id, a CPU model); comments give the reason.
HISTORY = re.compile(
    r"\b[Ii]ssues? #?\d+|\bstop \d+\b|\b20\d\d-\d\d-\d\d\b|\b[a-z][a-z0-9_]*-(?!1a2b3c4d)[0-9a-f]{8}\b"
    r"|\bZen ?\d\b|Cascade Lake|Sapphire Rapids|Ice Lake|\bXeon\b|\bEPYC\b"
)


def _comments_and_docstrings(path: Path):
    source = path.read_text()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield getattr(node, "lineno", 1), doc


def test_the_history_finder_finds_history():
    for text in ("(issue 32)", "run fast-dfd1253b", "on a Zen 4", "2026-12-02", "Intel Xeon"):
        assert HISTORY.search(text), text
    for text in ("run cnn_bn-1a2b3c4d", "a stop request", "AVX512-BF16 CPUs"):
        assert not HISTORY.search(text), text


def test_no_comment_or_docstring_of_the_code_carries_history():
    found = [
        f"{path.relative_to(ROOT)}:{line}: {match.group(0)}"
        for path in [*PACKAGE.rglob("*.py"), *DASHBOARD.rglob("*.py")]
        for line, text in _comments_and_docstrings(path)
        for match in HISTORY.finditer(text)
    ]
    assert found == []
