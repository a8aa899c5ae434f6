"""The package's layers (ARCHITECTURE.md) hold: no import from a higher layer, no import cycle.

Every module of keras_wrn is read with `ast` (module-level and in-function
imports alike); nothing is imported or run.
"""

import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "keras_wrn")


def read_layers():
    """``{top-level name: layer}`` from the table in ARCHITECTURE.md."""
    layers = {}
    with open(os.path.join(ROOT, "ARCHITECTURE.md"), encoding="utf-8") as stream:
        for line in stream:
            match = re.match(r"\|\s*(\d+)\s*\|([^|]*)\|", line)
            if match:
                for name in re.findall(r"`([\w.]+)`", match.group(2)):
                    layers[name] = int(match.group(1))
    return layers


def package_modules():
    """``{dotted name: path}`` of every module of keras_wrn."""
    modules = {}
    for directory, _, files in os.walk(PACKAGE):
        for file in files:
            if file.endswith(".py"):
                path = os.path.join(directory, file)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                modules[".".join(parts)] = path
    return modules


MODULES = package_modules()
LAYERS = read_layers()


def top_name(module):
    """The ARCHITECTURE.md name of a dotted module: ``keras_wrn.models.wrn`` -> ``models``."""
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def imports_of(module):
    """``(target module, line, in_function)`` for every keras_wrn import in ``module``."""
    path = MODULES[module]
    with open(path, encoding="utf-8") as stream:
        return imports_in(stream.read(), module, path.endswith("__init__.py"))


def imports_in(source, module, is_package=False):
    """`imports_of` for the text ``source`` of the module named ``module``."""
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in child.names:
                    candidate = f"{base}.{alias.name}"
                    found.append((candidate if candidate in MODULES else base, child.lineno, in_function))
            visit(child, nested)

    visit(tree, False)
    return [(target, line, inside) for target, line, inside in found
            if target == "keras_wrn" or target.startswith("keras_wrn.")]


def resolve(target):
    """The longest dotted prefix of ``target`` that is a module of the package."""
    while target not in MODULES:
        target = target.rpartition(".")[0]
    return target


def test_every_module_has_a_layer():
    missing = sorted({top_name(module) for module in MODULES} - set(LAYERS))
    assert not missing, f"modules without a layer in ARCHITECTURE.md: {missing}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_from_a_higher_layer(module):
    layer = LAYERS[top_name(module)]
    upward = [f"line {line}: {target} (layer {LAYERS[top_name(resolve(target))]})"
              for target, line, _ in imports_of(module) if LAYERS[top_name(resolve(target))] > layer]
    assert not upward, f"{module} (layer {layer}) imports from above: {upward}"


def test_no_import_cycle():
    graph = {module: {resolve(target) for target, _, _ in imports_of(module)} - {module} for module in MODULES}
    state, stack = {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycle = stack[stack.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(MODULES):
        if module not in state:
            visit(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_in_function_imports_say_what_they_defer(module):
    """A keras_wrn import inside a function is kept only to defer a heavy dependency, and says so."""
    with open(MODULES[module], encoding="utf-8") as stream:
        lines = stream.read().splitlines()
    unexplained = [f"line {line}: {lines[line - 1].strip()}" for _, line, inside in imports_of(module)
                   if inside and "deferred" not in lines[line - 1] and "deferred" not in lines[line - 2]]
    assert not unexplained, f"{module}: in-function imports without a '# deferred: ...' reason: {unexplained}"


def test_the_walk_sees_nested_relative_and_aliased_imports():
    """What the tests above rely on: imports inside functions and classes, relative ones, submodules."""
    source = ("import keras\nfrom keras_wrn import weights as released\n"
              "class A:\n    def f(self):\n        from ..training import train  # deferred: TensorFlow\n"
              "def g():\n    import keras_wrn.release\n")
    found = imports_in(source, "keras_wrn.models.wrn")
    assert found == [("keras_wrn.weights", 2, False), ("keras_wrn.training", 5, True), ("keras_wrn.release", 7, True)]
    upward = [target for target, _, _ in found if LAYERS[top_name(resolve(target))] > LAYERS["models"]]
    assert upward == ["keras_wrn.training", "keras_wrn.release"]


def test_readme_layout_shows_the_layers():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as stream:
        readme = stream.read()
    layout = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    shown, layer = {}, None
    for line in layout.splitlines():
        match = re.match(r"layer (\d+)\s", line)
        if match:
            layer = int(match.group(1))
        elif not line.startswith(" "):
            layer = None
        if layer is not None:
            shown.setdefault(layer, []).append(line)
    for name, layer in LAYERS.items():
        assert re.search(rf"\b{re.escape(name)}\b", "\n".join(shown.get(layer, []))), \
            f"README Layout does not show {name} in layer {layer}"
