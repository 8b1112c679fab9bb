"""The documentation cannot drift from the code.

- The site builds with ``mkdocs build --strict``, and such a build does fail on a broken link, a
  missing anchor and an unresolved cross-reference.
- Every public module is in the API reference.
- The code blocks of Getting started and of the tutorials run, in order, in a fresh folder per page
  (the conventions are in docs/contributing.md, "The docs' code blocks run").
- Every ``physadv`` command in any page, run or not, parses with today's command line.
- The README stays short, its Python snippet runs, its links exist, and its Quick-start test command
  is the one ``.ci/run`` runs.
"""

from __future__ import annotations

import re
import runpy
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
import yaml

from physadv.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
RUN_PAGES = ("getting-started.md", "tutorials/lab-session.md", "tutorials/webcam-demo.md",
             "tutorials/ci-evaluation.md")
SKIPPED = "skipped by tests/test_docs.py"
SHELLS = ("bash", "sh", "shell", "console")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
                   re.MULTILINE | re.DOTALL)
# Modules the API reference leaves out, and why.
NOT_IN_REFERENCE = {
    "physadv": "an empty package; its modules are documented",
    "physadv.cli": "the verbs are documented by their --help, in reference/cli.md",
    "physadv.cli.common": "the verbs' shared argument parsing",
    "physadv.data": "data files only",
    "physadv.capture": "an empty package; its modules are documented",
}


@dataclass(frozen=True)
class Block:
    language: str
    title: str | None
    body: str
    where: str

    @property
    def skipped(self) -> bool:
        return self.title is not None and SKIPPED in self.title

    def commands(self) -> list[list[str]]:
        """Each command line as words; ``\\`` continues a line, ``#`` starts a comment."""
        lines = self.body.replace("\\\n", " ").splitlines()
        return [words for words in (shlex.split(line, comments=True) for line in lines) if words]


def code_blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        info = match["info"].strip()
        title = re.search(r'title="([^"]*)"', info)
        indent = len(match["indent"])
        body = "".join(line[indent:] for line in match["body"].splitlines(keepends=True))
        where = f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}"
        blocks.append(Block(info.split()[0] if info else "", title[1] if title else None, body, where))
    return blocks


def physadv_arguments(words: list[str]) -> list[list[str]]:
    """The physadv arguments of each command in a shell line: ``physadv …``, ``.venv/bin/physadv …``,
    ``python -m physadv …`` and ``torchrun … -m physadv …``, output redirections left out."""
    commands, current = [], []
    for word in words + ["&&"]:
        if word in ("&&", "||", ";", "|"):
            commands.append(current)
            current = []
        else:
            current.append(word)
    found = []
    for command in commands:
        if command and Path(command[0]).name == "physadv":
            arguments = command[1:]
        elif "-m" in command and command[command.index("-m") + 1:command.index("-m") + 2] == ["physadv"]:
            arguments = command[command.index("-m") + 2:]
        else:
            continue
        kept = []
        skip_next = False
        for word in arguments:
            if skip_next:
                skip_next = False
            elif word in (">", ">>", "2>", "<"):
                skip_next = True
            else:
                kept.append(word)
        found.append(kept)
    return found


def every_page() -> list[Path]:
    return sorted(DOCS.rglob("*.md")) + [README]


# --- the site ---------------------------------------------------------------------------------------

def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_site_builds_strictly_with_the_api_and_cli_reference(tmp_path):
    build = mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert build.returncode == 0, build.stdout + build.stderr
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "physadv capture" in cli and "--manifest PATH" in cli  # every verb's --help is there
    capture = (tmp_path / "site" / "reference" / "capture" / "index.html").read_text(encoding="utf-8")
    assert 'id="physadv.capture.detect.find_pages"' in capture  # the stages' folders are found as installed


def test_a_strict_build_fails_on_broken_links_anchors_and_references(tmp_path):
    """The site's own settings (validation, strict, autorefs) on three broken pages."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    python = config["plugins"][1]["mkdocstrings"]["handlers"]["python"]["options"]
    python["extensions"] = [str(ROOT / extension) for extension in python["extensions"]]
    config.update(docs_dir=str(tmp_path / "docs"), hooks=[str(ROOT / hook) for hook in config["hooks"]],
                  nav=["index.md", "other.md"])
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Home\n\n[gone](missing.md), [an anchor](other.md#nowhere), "
                                                "[a function][physadv.no_such_function]\n", encoding="utf-8")
    (tmp_path / "docs" / "other.md").write_text("# Other\n", encoding="utf-8")
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    build = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    output = build.stdout + build.stderr
    assert build.returncode != 0
    for problem in ("missing.md", "#nowhere", "physadv.no_such_function"):
        assert problem in output, output


def public_modules() -> list[str]:
    """Every module of the installed physadv, from the source folders (nothing imported)."""
    folders = {"physadv": ROOT / "physadv", "physadv.capture": ROOT / "capture", "physadv.printouts": ROOT / "printouts"}
    names = []
    for package, folder in folders.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            if parts[:1] in (("capture",), ("printouts",)) and package == "physadv":
                continue  # not there: installed from the top-level folders
            if not any(part.startswith("_") for part in parts):
                names.append(".".join((package,) + parts))
    return names


def test_every_public_module_is_in_the_api_reference():
    documented = set()
    for page in (DOCS / "reference").glob("*.md"):
        documented |= set(re.findall(r"^::: ([\w.]+)", page.read_text(encoding="utf-8"), re.MULTILINE))
    modules = public_modules()
    assert "physadv.capture.detect" in modules and "physadv.attacks" in modules
    documented |= {name.rsplit(".", 1)[0] for name in documented if name not in modules}  # a module's members
    missing = [name for name in modules if name not in documented and name not in NOT_IN_REFERENCE
               and not name.startswith("physadv.cli.cmd_")]
    assert missing == [], f"add them to a page of docs/reference/: {missing}"
    stale = [name for name in documented if name not in modules and name.rsplit(".", 1)[0] not in modules
             and name.count(".") > 1 and name.rsplit(".", 2)[0] not in modules]
    assert stale == [], f"docs/reference names what is gone: {stale}"


# --- the code blocks --------------------------------------------------------------------------------

def run_command(words: list[str], where: str, capsys) -> None:
    if words[0] == "physadv":
        code = main(words[1:])
        assert code == 0, f"{where}: `{shlex.join(words)}` exited {code}: {capsys.readouterr().err[-2000:]}"
    elif words[0] == "python" and len(words) > 1 and words[1].endswith(".py"):
        with mock.patch.object(sys, "argv", words[1:]):
            try:
                runpy.run_path(words[1], run_name="__main__")
            except SystemExit as stop:
                assert stop.code in (None, 0), f"{where}: `{shlex.join(words)}` exited {stop.code}"
    else:
        pytest.fail(f"{where}: the docs' tests cannot run `{words[0]}`; give the block a title saying what it "
                    f"needs and '{SKIPPED}'")


def write_file(block: Block, folder: Path) -> None:
    target = Path(block.title)
    assert not target.is_absolute() and ".." not in target.parts, f"{block.where}: {block.title} leaves the folder"
    (folder / target).parent.mkdir(parents=True, exist_ok=True)
    (folder / target).write_text(block.body, encoding="utf-8")


@pytest.fixture
def page_folder(tmp_path, monkeypatch, digits_classifier):
    """A fresh working folder on the import path; the modules the page's files add are forgotten after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


@pytest.mark.slow
@pytest.mark.parametrize("page", RUN_PAGES)
def test_page_code_blocks_run(page, page_folder, capsys):
    namespace: dict = {"__name__": "__docs__"}
    physadv_commands = 0
    for block in code_blocks(DOCS / page):
        if block.skipped:
            continue
        if block.title is not None:
            write_file(block, page_folder)
        elif block.language in SHELLS:
            for words in block.commands():
                run_command(words, block.where, capsys)
                physadv_commands += words[0] == "physadv"
        elif block.language == "python":
            exec(compile(block.body, block.where, "exec"), namespace)
    assert physadv_commands > 0, f"{page}: no physadv command ran"


def test_every_physadv_command_in_the_docs_parses():
    parser = build_parser()
    checked = 0
    for path in every_page():
        for block in code_blocks(path):
            if block.language not in SHELLS:
                continue
            for words in block.commands():
                for arguments in physadv_arguments(words):
                    try:
                        parser.parse_args(arguments)
                    except SystemExit as stop:
                        assert stop.code == 0, f"{block.where}: `physadv {shlex.join(arguments)}` does not parse"
                    checked += 1
    assert checked > 30


def test_runner_conventions_hold_in_the_run_pages():
    """Titled blocks are files or say why they are skipped; every shell line of a run page can run."""
    for page in RUN_PAGES:
        for block in code_blocks(DOCS / page):
            if block.skipped or block.language not in SHELLS:
                continue
            if block.title is None:
                for words in block.commands():
                    assert words[0] == "physadv" or (words[0] == "python" and words[1].endswith(".py")), \
                        f"{block.where}: `{shlex.join(words)}` cannot run in the docs' tests"


# --- the README -------------------------------------------------------------------------------------

def test_readme_is_short_and_its_links_exist():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert links
    missing = [link for link in links if "://" not in link and not (ROOT / link).exists()]
    assert missing == []


def test_readme_quick_start_is_what_ci_runs_and_installs_the_docs():
    quick_start = README.read_text(encoding="utf-8").split("## Quick start", 1)[1].split("\n## ", 1)[0]
    [block] = [b for b in code_blocks(README) if b.language in SHELLS and b.body.strip() in quick_start]
    demo, tests = block.body.strip().splitlines()
    assert "pip install -e ." in demo and demo.endswith("physadv demo")
    assert "pip install -e '.[test]'" in tests and "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests in ci, ".ci/run must run the README's test command, word for word"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert "physadv[docs]" in extras["test"] and any(dep.startswith("mkdocs") for dep in extras["docs"])
    assert any(dep.startswith("playwright") for dep in extras["test"])


@pytest.mark.slow
def test_readme_python_snippet_runs(page_folder, capsys):
    [snippet] = [block for block in code_blocks(README) if block.language == "python"]
    exec(compile(snippet.body, snippet.where, "exec"), {"__name__": "__docs__"})
    assert re.search(r"\d\.\d+ \(\d+/\d+\)", capsys.readouterr().out)  # rates printed with their counts
