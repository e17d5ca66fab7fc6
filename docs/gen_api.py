"""Generate ``docs/api.md`` from the docstrings of every public name of funcprune.

Run ``.venv/bin/python docs/gen_api.py`` after changing a public name or its docstring;
``tests/test_docs.py`` fails while ``docs/api.md`` differs from what this script generates.

Public means: every name in ``funcprune.__all__``, then, for every module or package directly
under ``funcprune`` whose name does not start with ``_``, the names in its ``__all__`` (or, without
one, the functions and classes it defines whose names do not start with ``_``). Each object is
documented once, under the first module that exports it; later modules list it as a re-export.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import ForwardRef

import funcprune

API_MD = Path(__file__).resolve().parent / "api.md"
COMMAND = ".venv/bin/python docs/gen_api.py"
SECTIONS = {
    "Args",
    "Arguments",
    "Attributes",
    "Example",
    "Examples",
    "Note",
    "Notes",
    "Raises",
    "Returns",
    "See Also",
    "Warning",
    "Yields",
}


_VALUE_DOCS = {"__version__": "The version of the installed funcprune package."}


@dataclass(frozen=True)
class Entry:
    """One public name of one module."""

    module: str
    name: str
    obj: object


def public_modules() -> list[ModuleType]:
    """``funcprune`` and its public direct submodules and subpackages, in that order."""
    found = [funcprune]
    for info in sorted(pkgutil.iter_modules(funcprune.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            found.append(importlib.import_module(f"funcprune.{info.name}"))
    return found


def public_names(module: ModuleType) -> list[str]:
    """``module.__all__``, or the functions and classes it defines that are not private."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and obj.__module__ == module.__name__
    ]


def entries() -> dict[str, list[Entry]]:
    """Every public name, by module."""
    return {
        module.__name__: [
            Entry(module.__name__, n, getattr(module, n)) for n in public_names(module)
        ]
        for module in public_modules()
    }


def _clean_roles(text: str) -> str:
    text = re.sub(r":(?:func|class|meth|mod|attr|data|obj|exc):`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _section_items(lines: list[str]) -> list[str]:
    """Google-style section body (indented ``name: text`` items) as a markdown list."""
    items: list[str] = []
    base = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    for line in lines:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        text = line.strip()
        if indent > base and items:
            items[-1] += " " + text
            continue
        head, sep, rest = text.partition(": ")
        is_item = sep and re.fullmatch(r"[\w*.\[\], ]+", head) is not None
        items.append(f"- `{head}`: {rest}" if is_item else f"- {text}")
    return items


def docstring_markdown(doc: str) -> list[str]:
    """A Google-style docstring as markdown; ``>>>`` examples become ``pycon`` blocks."""
    lines = inspect.cleandoc(doc).splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith(">>>"):
            indent = len(line) - len(line.lstrip())
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i][indent:])
                i += 1
            out += ["```pycon", *block, "```"]
            continue
        if stripped.endswith(":") and stripped[:-1] in SECTIONS and not line.startswith(" "):
            i += 1
            body = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                if lines[i].strip().startswith(">>>"):
                    break
                body.append(lines[i])
                i += 1
            out += [
                "",
                f"**{stripped[:-1]}:**",
                "",
                *(_clean_roles(t) for t in _section_items(body)),
            ]
            out.append("")
            continue
        out.append(_clean_roles(line))
        i += 1
    return _squeeze_blank(out)


def _squeeze_blank(lines: list[str]) -> list[str]:
    """No leading, trailing or doubled blank lines; a blank line around every code fence."""
    spaced: list[str] = []
    in_code = False
    for line in lines:
        if line.startswith("```"):
            if not in_code:
                spaced.append("")
            spaced.append(line)
            in_code = not in_code
            if not in_code:
                spaced.append("")
            continue
        spaced.append(line)
    result: list[str] = []
    for line in spaced:
        if not line.strip() and (not result or not result[-1].strip()):
            continue
        result.append(line.rstrip())
    while result and not result[-1].strip():
        result.pop()
    return result


class _Annotation(str):
    """A string annotation that prints without quotes in a signature."""

    def __repr__(self) -> str:
        return str(self)


def signature(obj: object) -> str | None:
    """``(a: int, *, b: str = 'x') -> T`` with string annotations unquoted; None if unavailable."""
    try:
        sig = inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None

    def unquote(annotation: object) -> object:
        if isinstance(annotation, ForwardRef):
            annotation = annotation.__forward_arg__
        return _Annotation(annotation) if isinstance(annotation, str) else annotation

    params = [p.replace(annotation=unquote(p.annotation)) for p in sig.parameters.values()]
    shown = str(sig.replace(parameters=params, return_annotation=unquote(sig.return_annotation)))
    return re.sub(r"ForwardRef\('([^']*)'\)", r"\1", shown)  # inside evaluated generics


def _alias_source(entry: Entry) -> tuple[str, str] | None:
    """``(value source, attribute docstring)`` of a module-level assignment of ``entry.name``."""
    for module in [sys.modules[entry.module], *public_modules()[1:]]:
        if getattr(module, entry.name, None) is not entry.obj:
            continue
        source = inspect.getsource(module)
        body = ast.parse(source).body
        for node, after in zip(body, [*body[1:], None], strict=True):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            if not any(isinstance(t, ast.Name) and t.id == entry.name for t in targets):
                continue
            value = getattr(node, "value", None)
            text = ast.get_source_segment(source, value) if value is not None else ""
            doc = ""
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                doc = str(after.value.value)
            return " ".join((text or "").split()), doc
    return None


def _is_protocol(obj: object) -> bool:
    return inspect.isclass(obj) and bool(getattr(obj, "_is_protocol", False))


def _own_methods(cls: type) -> list[tuple[str, object]]:
    """Public methods and properties defined by ``cls`` itself that have docstrings."""
    found: list[tuple[str, object]] = []
    for name, member in vars(cls).items():
        if name.startswith("_") and name != "__call__":
            continue
        func = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
        if (inspect.isfunction(func) or isinstance(func, property)) and (
            func.__doc__ or ""
        ).strip():
            found.append((name, func))
    return found


def document(entry: Entry) -> list[str]:
    """The markdown of one public object."""
    qualified = f"{entry.module}.{entry.name}"
    obj = entry.obj
    out = [f"### `{qualified}`", ""]
    if inspect.isclass(obj) or (callable(obj) and inspect.isroutine(obj)):
        kind = "class " if inspect.isclass(obj) else ""
        sig = None if _is_protocol(obj) else signature(obj)
        if sig is not None and inspect.isclass(obj):
            sig = sig.removesuffix(" -> None")
        shown = f"{kind}{qualified}{sig or ''}"
        if _is_protocol(obj):
            bases = ", ".join(b.__name__ for b in obj.__bases__)
            shown = f"class {qualified}({bases})"
        out += ["```text", shown, "```", ""]
        doc = inspect.getdoc(obj) if inspect.isroutine(obj) else obj.__doc__
        out += docstring_markdown(doc or "*No docstring.*")
        if inspect.isclass(obj):
            for name, member in _own_methods(obj):
                bound = getattr(obj, name)  # classmethods bound: no ``cls`` in the signature
                sig = "" if isinstance(member, property) else signature(bound) or ""
                out += ["", f"#### `{entry.name}.{name}{sig}`", ""]
                out += docstring_markdown(member.__doc__ or "")
    else:
        alias = _alias_source(entry)
        value, doc = alias if alias is not None else (repr(obj), "")
        doc = doc or _VALUE_DOCS.get(entry.name, "")
        out += ["```text", f"{qualified} = {value}", "```", ""]
        out += docstring_markdown(doc or "")
    return [*out, ""]


def module_summary(module: ModuleType) -> list[str]:
    """The first paragraph of a module's docstring."""
    doc = inspect.getdoc(module) or ""
    first = doc.split("\n\n")[0]
    return [_clean_roles(" ".join(first.split())), ""] if first else []


def render() -> str:
    """The whole of ``docs/api.md``."""
    by_module = entries()
    out = [
        "# API reference",
        "",
        f"Generated from the docstrings by `{COMMAND}`; do not edit by hand (CI checks that it is",
        "current). Every public name of every public module is here. The examples are the modules'",
        "doctests, which run in CI.",
        "",
        "Modules: " + ", ".join(f"[`{name}`](#module-{_anchor(name)})" for name in by_module),
        "",
    ]
    documented: dict[int, str] = {}
    for module_name, module_entries in by_module.items():
        module = sys.modules[module_name]
        out += [f"## Module `{module_name}`", "", *module_summary(module)]
        fresh = [e for e in module_entries if id(e.obj) not in documented or _is_value(e.obj)]
        again = [e for e in module_entries if e not in fresh]
        if fresh:
            out += ["| name | summary |", "|---|---|"]
            for e in fresh:
                anchor = _anchor(f"{module_name}.{e.name}")
                out.append(f"| [`{e.name}`](#{anchor}) | {_summary(e)} |")
            out.append("")
        if again:
            links = []
            for e in again:
                target = documented[id(e.obj)]
                links.append(f"[`{e.name}`](#{_anchor(target)})")
            out += ["Also exported here (documented above): " + ", ".join(links) + ".", ""]
        for e in fresh:
            documented.setdefault(id(e.obj), f"{e.module}.{e.name}")
            out += document(e)
    return "\n".join(_squeeze_blank(out)) + "\n"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading made of ``heading`` in backticks."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _is_value(obj: object) -> bool:
    """Plain values (strings, numbers) are never deduplicated by identity."""
    return isinstance(obj, (str, int, float))


def _summary(entry: Entry) -> str:
    obj = entry.obj
    if inspect.isclass(obj) or inspect.isroutine(obj):
        doc = inspect.getdoc(obj) if inspect.isroutine(obj) else obj.__doc__
    else:
        alias = _alias_source(entry)
        doc = (alias[1] if alias else "") or _VALUE_DOCS.get(entry.name, "")
    first = inspect.cleandoc(doc or "").split("\n\n")[0]
    return _clean_roles(" ".join(first.split())).replace("|", "\\|")


def missing_docstrings() -> list[str]:
    """Public functions and classes without a docstring of their own."""
    return sorted(
        f"{e.module}.{e.name}"
        for module_entries in entries().values()
        for e in module_entries
        if (inspect.isroutine(e.obj) or inspect.isclass(e.obj))
        and not (e.obj.__doc__ or "").strip()
    )


def main() -> None:
    API_MD.write_text(render())
    print(f"wrote {API_MD}")


if __name__ == "__main__":
    main()
