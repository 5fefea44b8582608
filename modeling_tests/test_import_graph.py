"""The package's import graph, read from the source (`ast`): library code never imports the command line (`cli/`),
and no module imports itself through others (no import circles), counting module-level and function-level imports."""

import ast
from pathlib import Path

import transformers_ramplus


PACKAGE = "transformers_ramplus"
ROOT = Path(transformers_ramplus.__file__).parent


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its `__init__.py`)."""
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of `from <level dots><name> import ...` written in `module`."""
    if level == 0:
        return name
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def import_graph() -> dict[str, set[str]]:
    """`module -> package modules it imports` (`from pkg import sub` counts as importing `pkg.sub` when that is a
    module). Only what a module names counts: the packages above it run first but are no edges of their own."""
    modules = _modules()
    graph = {name: set() for name in modules}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(module, is_package, node.level, node.module)
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    targets.append(submodule if submodule in modules else source)
            for target in targets:
                if target == PACKAGE or target.startswith(PACKAGE + "."):
                    while target not in modules:  # `import pkg.sub.name`: the deepest module named
                        target = target.rsplit(".", 1)[0]
                    if target != module:
                        graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _is_cli(module: str) -> bool:
    return module == f"{PACKAGE}.cli" or module.startswith(f"{PACKAGE}.cli.")


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert f"{PACKAGE}.cli.main" in graph and f"{PACKAGE}.models.ram_plus.modeling_ram_plus" in graph
    # relative `from ..x import y`, absolute imports inside `try` blocks, imports inside functions
    assert f"{PACKAGE}.models.ram_plus.configuration_ram_plus" in graph[f"{PACKAGE}.pipelines.zero_shot_image_tagging"]
    assert f"{PACKAGE}.inference.fast_paths" in graph[f"{PACKAGE}.pipelines.zero_shot_image_tagging"]
    assert f"{PACKAGE}.training.benchmark" in graph[f"{PACKAGE}.cli.finetune"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_library_code_does_not_import_the_command_line():
    graph = import_graph()
    offenders = {module: sorted(filter(_is_cli, targets)) for module, targets in graph.items() if not _is_cli(module)}
    assert {module: targets for module, targets in offenders.items() if targets} == {}


def test_no_import_circles():
    assert _cycles(import_graph()) == []
