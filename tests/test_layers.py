"""The package is layered: a module imports only from its own layer or the layers below it."""

import ast
from pathlib import Path

import visionlab

PACKAGE = Path(visionlab.__file__).parent

# Bottom to top, as in the README's architecture section.
LAYERS = [
    {"data_config", "errors", "assets", "resolvers", "checkpoint_header", "config_targets", "drawing",
     "image_files", "registry", "downloads", "project", "overrides"},
    {"data", "nets"},
    {"finetune", "metrics"},
    {"modules"},
    {"callbacks"},
    {"train", "run_summary", "preflight", "prefetch"},
    {"inference"},
    {"api", "cas"},
    {"cli"},
]
# Parts that share a layer and never import each other: networks and data know nothing of each
# other (both read data_config), and the freeze plans and the metrics are independent.
SIBLINGS = [{"data", "nets"}, {"finetune", "metrics"}]


def layer_of(part: str) -> int:
    """The layer index of a top-level part of the package (a subpackage or module name)."""
    for index, parts in enumerate(LAYERS):
        if part in parts:
            return index
    raise AssertionError(f"visionlab.{part} is in no layer: add it to LAYERS and the README")


def visionlab_imports(path: Path) -> set[str]:
    """Top-level parts of visionlab that a source file imports, at any indentation."""
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            pieces = name.split(".")
            if pieces[0] == "visionlab" and len(pieces) > 1:
                parts.add(pieces[1])
    return parts


def test_no_module_imports_from_a_higher_layer_or_a_sibling():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts == ("__init__.py",):
            continue
        own = relative.parts[0].removesuffix(".py")
        for imported in visionlab_imports(path):
            if layer_of(imported) > layer_of(own):
                violations.append(f"{relative} imports visionlab.{imported} (a higher layer)")
            elif imported != own and any({own, imported} <= pair for pair in SIBLINGS):
                violations.append(f"{relative} imports visionlab.{imported} (a sibling)")
    assert not violations, "\n".join(violations)


def test_the_checker_sees_a_back_arrow(tmp_path):
    source = tmp_path / "bad.py"
    source.write_text("def f():\n    from visionlab.modules.classifier import ClassifierModule\n")
    assert visionlab_imports(source) == {"modules"}
    assert layer_of("modules") > layer_of("nets")
    assert any({"nets", "data"} <= pair for pair in SIBLINGS)  # same layer, yet an arrow between them fails


def module_imports(path: Path) -> set[str]:
    """The visionlab modules a source file imports (``visionlab.cli.sweep``...), at any indentation."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return {m for m in modules if m.startswith("visionlab.")}


def test_no_import_cycle_between_the_modules_of_a_package_part():
    """Within each part (``cli``, ``inference``, ``modules``...), no module reaches itself through the
    modules it imports: each kind of change has one room, and the rooms do not lean on each other. (A
    package's ``__init__`` importing its modules, so that they register, is no room and is left out.)"""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__init__.py":
            continue
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(("visionlab", *parts)).removesuffix(".__init__")
        graph[name] = module_imports(path)
    graph = {name: {m for m in imported if m in graph and m != name} for name, imported in graph.items()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph[start]:
            if nxt == goal or (nxt not in seen and (seen.add(nxt) or reaches(nxt, goal, seen))):
                return True
        return False

    def part(name: str) -> str:
        return (name.split(".") + [""])[1]

    same_part = [(a, b) for a in graph for b in graph[a] if part(a) == part(b)]
    cycles = sorted({tuple(sorted((a, b))) for a, b in same_part if reaches(b, a, set())})
    assert not cycles, cycles
