"""The docs are tested: every code block of README.md and docs/*.md runs, and api.md is current.

- A ```python block runs on its own (fresh namespace, temporary working folder) and must not raise.
- ```pycon blocks are doctests; those of one page share a namespace, in page order.
- Output and illustrations use another fence (```text, ```bash, ...), which is not run.
- ``docs/api.md`` must equal what ``docs/gen_api.py`` generates from the docstrings (its examples
  are the modules' doctests, which pytest runs from the modules), and name every public name.
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(
    r"^(?P<indent> *)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S
)
LOOKALIKES = {"py", "python3", "py3", "ipython", "Python"}


@dataclass(frozen=True)
class Block:
    """A fenced code block of a markdown page."""

    page: Path
    line: int
    lang: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        indent = len(match["indent"])
        code = "\n".join(line[indent:] for line in match["body"].splitlines()) + "\n"
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(page, line, match["lang"], code))
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks(page)]
PYTHON = [b for b in ALL_BLOCKS if b.lang == "python"]


def load_generator() -> ModuleType:
    if "gen_api" in sys.modules:
        return sys.modules["gen_api"]
    spec = importlib.util.spec_from_file_location("gen_api", ROOT / "docs" / "gen_api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_api"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_docs_exist() -> None:
    names = {page.name for page in PAGES}
    assert {"README.md", "index.md", "quickstart.md", "api.md", "semantics.md"} <= names
    assert len(PYTHON) >= 10, "the docs should show runnable code"


def test_no_python_lookalike_fences() -> None:
    """A block fenced ```py would silently escape testing: only ```python runs."""
    odd = [f"{b.where} (```{b.lang})" for b in ALL_BLOCKS if b.lang in LOOKALIKES]
    assert not odd, f"use ```python (run) or ```text (not run) instead: {odd}"


@pytest.mark.parametrize("block", PYTHON, ids=[b.where for b in PYTHON])
def test_python_block_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # Pad so that tracebacks point at the page's own line numbers.
    code = compile("\n" * block.line + block.code, str(block.page), "exec")
    exec(code, {"__name__": "__docs__"})


PYCON_PAGES = [
    page for page in PAGES if page.name != "api.md" and any(b.lang == "pycon" for b in blocks(page))
]


@pytest.mark.parametrize("page", PYCON_PAGES, ids=[p.name for p in PYCON_PAGES])
def test_pycon_blocks_are_doctests(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for block in (b for b in blocks(page) if b.lang == "pycon"):
        test = parser.get_doctest(block.code, namespace, block.where, str(page), block.line)
        test.globs = namespace  # shared across the page's blocks, in order
        result = runner.run(test, clear_globs=False)
        assert result.failed == 0, f"doctest failed in {block.where} (see the output above)"


def test_api_md_is_current() -> None:
    generator = load_generator()
    expected = generator.render()
    actual = (ROOT / "docs" / "api.md").read_text()
    assert actual == expected, f"docs/api.md is out of date: run `{generator.COMMAND}`"


def test_api_md_names_every_public_name() -> None:
    generator = load_generator()
    text = (ROOT / "docs" / "api.md").read_text()
    sections = re.split(r"^## Module `([\w.]+)`$", text, flags=re.M)
    by_module = dict(zip(sections[1::2], sections[2::2], strict=True))
    missing = []
    for module, entries in generator.entries().items():
        section = by_module.get(module, "")
        for entry in entries:
            heading = f"### `{module}.{entry.name}`"
            reexport = f"[`{entry.name}`]("
            if heading not in section and reexport not in section:
                missing.append(f"{module}.{entry.name}")
    assert not missing, f"docs/api.md lacks {missing}: run `{generator.COMMAND}`"


def test_every_public_name_has_a_docstring() -> None:
    assert load_generator().missing_docstrings() == []


def test_readme_keeps_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "./run demo" in readme and "./run test" in readme
    assert os.access(ROOT / "run", os.X_OK)


LINK = re.compile(r"\]\((?!https?://)(?P<path>[^)#\s]*)(?:#(?P<anchor>[^)\s]*))?\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings (code fences skipped)."""
    text = FENCE.sub("", page.read_text())
    headings = re.findall(r"^#{1,6} +(.+?) *$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_relative_links_resolve() -> None:
    broken = []
    for page in PAGES:
        text = FENCE.sub("", page.read_text())
        for match in LINK.finditer(text):
            target = (page.parent / match["path"]).resolve() if match["path"] else page
            if not target.exists():
                broken.append(f"{page.name}: {match['path']} does not exist")
            elif (
                match["anchor"]
                and target.suffix == ".md"
                and match["anchor"] not in anchors(target)
            ):
                broken.append(f"{page.name}: no heading #{match['anchor']} in {target.name}")
    assert not broken, broken
