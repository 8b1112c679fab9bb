"""The house: importing physadv reads and writes nothing, the report needs no torch, no import circles."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Run in a fresh interpreter: every "open" (and every call that changes a file) is recorded when physadv's
# own code makes it, i.e. when a frame of a source root (argv[1]) on the stack is a function, or module-level
# code on a line other than an import (third-party packages reading their own files as they are imported
# are theirs). Any file of a source root that is not Python, opened by anyone, is recorded too.
AUDIT = textwrap.dedent('''
    import importlib, json, linecache, os, sys, sysconfig
    roots, names = tuple(os.path.join(r, "") for r in json.loads(sys.argv[1])), json.loads(sys.argv[2])
    stdlib = sysconfig.get_paths()["stdlib"]
    CHANGES = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.truncate", "os.symlink", "os.link",
               "os.chmod", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move", "sqlite3.connect"}
    CODE = (".py", ".pyc", ".so", ".pyi")
    found = []

    def ours() -> str | None:
        frame = sys._getframe(2)
        while frame is not None:
            name = frame.f_code.co_filename
            if name.startswith(roots):
                line = linecache.getline(name, frame.f_lineno).strip()
                if frame.f_code.co_name != "<module>" or not line.startswith(("import ", "from ")):
                    return f"{name}:{frame.f_lineno}"
            frame = frame.f_back
        return None

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            changes = (mode is not None and any(c in str(mode) for c in "wax+")) or (
                isinstance(flags, int) and bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)))
            if not changes and str(path).endswith(CODE):
                return
            where = ours() or (str(path).startswith(roots) and "a file of the package")
        elif event in CHANGES:
            where = ours()
        else:
            return
        if where:
            found.append(f"{event} {args[0]!r} from {where}")

    sys.addaudithook(hook)
    for name in names:
        importlib.import_module(name)
    print(json.dumps(found))
''')


def installed_modules() -> list[tuple[str, Path]]:
    """(dotted name, source file) of every module the wheel installs, as pyproject.toml lists its packages
    (``__main__`` aside: it runs the CLI)."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    folders = setuptools.get("package-dir", {})
    modules = []
    for package in setuptools["packages"]:
        folder = ROOT / folders.get(package, package.replace(".", "/"))
        for path in sorted(folder.glob("*.py")):
            if path.stem != "__main__":
                modules.append((package if path.stem == "__init__" else f"{package}.{path.stem}", path))
    return modules


def audit_imports(names: list[str], roots: list[Path], tmp_path: Path) -> list[str]:
    """What importing ``names`` one after another in a fresh interpreter reads or writes (see :data:`AUDIT`),
    with home, caches and the working folder in ``tmp_path``."""
    home = tmp_path / "home"
    home.mkdir()
    environment = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
                   "XDG_CONFIG_HOME": str(home / ".config"), "MPLCONFIGDIR": str(home / "mpl"),
                   "PYTHONDONTWRITEBYTECODE": "1",  # the interpreter's own .pyc files are not the package's writes
                   "PYTHONPATH": os.pathsep.join(str(root.parent) for root in roots)}
    result = subprocess.run([sys.executable, "-c", AUDIT, json.dumps([str(r) for r in roots]), json.dumps(names)],
                            capture_output=True, text=True, cwd=tmp_path, env=environment, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_importing_every_module_reads_no_configuration_or_data_and_writes_nothing(tmp_path):
    modules = installed_modules()
    names = [name for name, _ in modules]
    assert {"physadv.report", "physadv.lab.session", "physadv.capture.pipeline",
            "physadv.printouts.camera"} <= set(names)
    roots = [ROOT / folder for folder in ("physadv", "capture", "printouts")]
    assert audit_imports(names, roots, tmp_path) == []


def test_the_import_audit_sees_reads_and_writes_at_import(tmp_path):
    """The audit itself: a module that reads a configuration file, writes a file and calls a function that
    reads one, all at import, is caught three times; one that only imports is not."""
    package = tmp_path / "src" / "leaky"
    package.mkdir(parents=True)
    (package / "settings.toml").write_text("a = 1\n")
    (package / "__init__.py").write_text("")
    (package / "quiet.py").write_text("import json\nfrom pathlib import Path\n")
    (package / "loud.py").write_text(textwrap.dedent('''
        from pathlib import Path

        SETTINGS = (Path(__file__).parent / "settings.toml").read_text()
        Path("written.txt").write_text("x")

        def read(path=Path(__file__).parent / "settings.toml"):
            return path.read_bytes()

        DEFAULT = read()
    '''))
    found = audit_imports(["leaky.quiet", "leaky.loud"], [package], tmp_path)
    assert len(found) == 3, found
    assert sum("settings.toml" in line for line in found) == 2 and any("written.txt" in line for line in found)


def test_the_report_imports_no_torch(tmp_path):
    loaded = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from physadv.report import ReportData, write_report
        from physadv.results import Case, PatchRow, ResultRow

        row = ResultRow(method="bim", eps=8.0, transform="photo", strength=None, case=Case.AVERAGE, n_images=4,
                        top1_clean=1.0, top1_adv=0.0, top1_transformed=0.5, top5_clean=1.0, top5_adv=1.0,
                        top5_transformed=1.0, destruction_top1=0.5, destruction_top5=None, destruction_top1_n=4,
                        destruction_top5_n=0)
        patch = PatchRow(variant="patch", transform="photo", area=0.25, target=3, target_name="3", n=4,
                         target_success_digital=0.75, target_success_photo=0.5, top1_digital=0.25, top1_photo=0.5,
                         top1_n=4, model="digits")
        write_report(ReportData("r", "digits", "today", [row, patch], [], {{"photos": 1}}), {str(tmp_path)!r})
        print(sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "torchvision", "kornia", "cv2")))
    """)], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
    assert "Adversarial patch" in (tmp_path / "report.html").read_text(encoding="utf-8")


def import_graph(modules: list[tuple[str, Path]]) -> dict[str, set[str]]:
    """Module → the physadv modules it imports, at any level (in functions too; ``if TYPE_CHECKING`` aside).
    ``from package import name`` imports the package itself, and its submodule ``name`` if there is one."""
    known = dict(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(block.test) for statement in block.body
                       for node in ast.walk(statement)}
        package = name if path.stem == "__init__" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names if alias.name in known}
            elif isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level else ""
                source = ".".join(part for part in (base, node.module) if part)
                edges |= {source} & known.keys()
                edges |= {f"{source}.{alias.name}" for alias in node.names} & known.keys()
        graph[name] = edges - {name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_import_circle_among_physadv_modules():
    graph = import_graph(installed_modules())
    assert graph["physadv.lab.session"] >= {"physadv.lab.store", "physadv.capture.pipeline"}  # the graph is real
    assert circles(graph) == []


def test_the_circle_finder_sees_circles_through_packages_and_functions(tmp_path):
    files = {"p/__init__.py": "from p.a import A\n", "p/a.py": "def f():\n    from p import b\nA = 1\n",
             "p/b.py": "from p.a import A\n", "p/c.py": "import p.d\n", "p/d.py": "from typing import TYPE_CHECKING\n"
             "if TYPE_CHECKING:\n    import p.c\n"}
    modules = []
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
        modules.append((name.removesuffix(".py").removesuffix("/__init__").replace("/", "."), tmp_path / name))
    # a imports the package p (whose __init__ imports a) and its submodule b (which imports a); c ↔ d is type-only.
    assert circles(import_graph(modules)) == [["p", "p.a", "p.b"]]
