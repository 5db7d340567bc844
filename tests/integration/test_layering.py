"""The package's layering: no module of ssl_lab imports a module of a layer above its own."""

import ast
import os

from conftest import REPO_ROOT

PACKAGE = os.path.join(REPO_ROOT, "ssl_lab")

# Lower layers first; a module may import its own layer and the layers below it.
LAYERS = [
    {"utils"},
    {"config"},
    {"data", "modeling", "layers", "solver", "evaluation", "checkpoint", "model_zoo"},
    {"engine"},
    {"registry"},  # ssl_lab/registry.py lists the registries of every layer
]
LAYER_OF = {name: level for level, names in enumerate(LAYERS) for name in names}


def _subpackage(module: str) -> str:
    """ "ssl_lab.modeling.meta_arch.moco" -> "modeling"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: str, module: str):
    """Every ssl_lab module that the file imports, anywhere in it (late imports included)."""
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            yield target
            if target == "ssl_lab":  # `from ssl_lab import engine`
                yield from (f"{target}.{alias.name}" for alias in node.names)


def upward_imports():
    found = []
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            module = os.path.relpath(path, REPO_ROOT)[:-3].replace(os.sep, ".").removesuffix(".__init__")
            own = _subpackage(module)
            if own not in LAYER_OF:
                continue
            for target in _imports(path, module):
                other = _subpackage(target) if target.startswith("ssl_lab.") else None
                if other in LAYER_OF and LAYER_OF[other] > LAYER_OF[own]:
                    found.append(f"{module} imports {target}")
    return sorted(set(found))


def test_every_subpackage_has_a_layer():
    subpackages = {n for n in os.listdir(PACKAGE) if os.path.isfile(os.path.join(PACKAGE, n, "__init__.py"))}
    modules = {n[:-3] for n in os.listdir(PACKAGE) if n.endswith(".py") and n != "__init__.py"}
    assert subpackages | modules == set(LAYER_OF), "add the new subpackage or module to LAYERS"


def test_no_module_imports_from_a_layer_above():
    assert upward_imports() == []
