"""CPU: the tree's layers, as docs/architecture.md writes them, are the imports' layers.

Bottom to top: ``core`` (device core math, contracts) < ``kv`` (where K/V rows live) < ``arch`` (per-generation
blocks and the generation-shared ones) < ``kernels`` (kernel objects and their records) < ``host`` (compile cache,
launcher, registry) < ``api`` (torch entry points) < ``tools`` (catalogue, SASS reading, reference, CLI). A module
may import its own layer and the ones below, never one above; inside ``arch`` a generation's folder may import
``arch.common`` but no other generation, and ``arch.common`` no generation at all.
"""

import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = ["core", "kv", "arch", "kernels", "host", "api", "tools"]
GENERATIONS = ("sm70", "sm75", "sm80", "sm90")
MAX_LINES = 800


def modules():
    """(module name, path) of every source module; ``arch/`` imports as ``cute_attention.arch``."""
    for top, package in (("cute_attention", "cute_attention"), ("arch", "cute_attention.arch")):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for f in sorted(files):
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(dirpath, f), os.path.join(ROOT, top))[:-3].replace(os.sep, ".")
                    rel = re.sub(r"(^|\.)__init__$", "", rel)
                    yield (f"{package}.{rel}" if rel else package), os.path.join(dirpath, f)


def layer_of(name: str) -> str | None:
    """The layer of a ``cute_attention...`` module; None for the package root (the public facade, above all)."""
    parts = name.split(".")
    if len(parts) == 1:
        return None
    if parts[1] == "__main__":
        return "tools"
    return parts[1] if parts[1] in LAYERS else "?"


def imports(path: str, name: str):
    """Every ``cute_attention`` module a file imports, at any depth (function-level imports included)."""
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "cute_attention":  # from cute_attention import x: a submodule or a facade name
                for alias in node.names:
                    sub = f"cute_attention.{alias.name}"
                    yield sub if layer_of(sub) in LAYERS else "cute_attention"
            elif node.module.startswith("cute_attention."):
                yield node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("cute_attention"):
                    yield alias.name


def generation(name: str) -> str | None:
    parts = name.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "arch" and parts[2] in (*GENERATIONS, "common") else None


ALL = list(modules())


def test_every_module_has_a_layer():
    assert ALL
    for name, _ in ALL:
        assert name == "cute_attention" or layer_of(name) in LAYERS, name


@pytest.mark.parametrize("name,path", ALL, ids=[n for n, _ in ALL])
def test_no_module_imports_a_higher_layer(name, path):
    if name == "cute_attention":
        return  # the facade re-exports the public API
    mine = LAYERS.index(layer_of(name))
    for dep in imports(path, name):
        theirs = layer_of(dep)
        assert theirs is not None, f"{name} imports the package facade ({dep}); import the module instead"
        assert LAYERS.index(theirs) <= mine, f"{name} ({LAYERS[mine]}) imports {dep} ({theirs})"
        gen, dep_gen = generation(name), generation(dep)
        if gen and dep_gen and gen != dep_gen:
            assert dep_gen == "common" and gen != "common", f"{name} imports another generation's {dep}"


def test_the_layer_check_can_fail(tmp_path):
    """The checks above would catch a core module importing the API, and a generation importing another."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from cute_attention.api.attention import attention\n")
    deps = list(imports(str(bad), "cute_attention.core.bad"))
    assert deps == ["cute_attention.api.attention"] and LAYERS.index(layer_of(deps[0])) > LAYERS.index("core")
    assert generation("cute_attention.arch.sm80.mainloop") == "sm80"
    assert generation("cute_attention.arch.sm70.impl884") != generation("cute_attention.arch.sm80.x")


@pytest.mark.parametrize("name,path", ALL, ids=[n for n, _ in ALL])
def test_modules_stay_small(name, path):
    assert sum(1 for _ in open(path)) <= MAX_LINES, f"{name} is over {MAX_LINES} lines"
