"""The documentation's commands cannot rot: every ``class-admin``, ``class-api`` and
``class-scheduler`` invocation in README.md and docs/*.md names a real command and real flags,
and the Python snippets of docs/embedding.md run."""

from __future__ import annotations

import asyncio
import re
import shlex
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
PROGRAMS = ("class-admin", "class-api", "class-scheduler")
_FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)
_INLINE = re.compile(r"`((?:class-admin|class-api|class-scheduler)(?: [^`]*)?)`")


def _invocations() -> list[tuple[str, str]]:
    """(doc name, command line) for every invocation in code blocks and inline code."""
    found: list[tuple[str, str]] = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        lines: list[str] = []
        for lang, body in _FENCE.findall(text):
            if lang in ("", "bash", "sh", "shell", "console"):
                lines += body.replace("\\\n", " ").splitlines()
        lines += _INLINE.findall(text)
        for line in lines:
            line = line.strip().lstrip("$ ").split("#")[0].strip()
            for program in PROGRAMS:
                index = line.find(program)
                if index >= 0 and (index == 0 or line[index - 1] in " /;|&("):
                    found.append((doc.name, line[index:].split("|")[0].strip()))
    return sorted(set(found))


INVOCATIONS = _invocations()


@cache
def _help(argv: tuple[str, ...]) -> tuple[int, str]:
    proc = subprocess.run(
        [str(BIN / argv[0]), *argv[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": str(BIN), "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
    )
    return proc.returncode, proc.stdout + proc.stderr


def _command_path(words: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """The longest prefix of ``words`` that is a command (its --help works), and the flags."""
    path = [words[0]]
    for word in words[1:]:
        if word.startswith("-"):
            break
        code, _ = _help((*path, word))
        if code != 0:
            break
        path.append(word)
    flags = [w.split("=")[0] for w in words if w.startswith("--")]
    return tuple(path), flags


def test_the_docs_mention_commands() -> None:
    programs = {line.split()[0] for _, line in INVOCATIONS}
    assert programs == set(PROGRAMS)


@pytest.mark.parametrize(("doc", "line"), INVOCATIONS)
def test_documented_command_exists_with_its_flags(doc: str, line: str) -> None:
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    words = [w for w in words if w not in ("...", "…")]
    path, flags = _command_path(words)
    code, text = _help(path)
    assert code == 0, f"{doc}: `{line}`: {' '.join(path)} --help failed:\n{text}"
    for flag in flags:
        if flag in ("--help",):
            continue
        assert flag in text, f"{doc}: `{line}`: {' '.join(path)} has no {flag}"


def test_embedding_snippets_run() -> None:
    text = (ROOT / "docs" / "embedding.md").read_text(encoding="utf-8")
    snippets = [body for lang, body in _FENCE.findall(text) if lang == "python"]
    assert snippets
    for body in snippets:
        namespace: dict[str, object] = {}
        exec("async def _snippet():\n" + textwrap.indent(body, "    "), namespace)
        asyncio.run(namespace["_snippet"]())  # type: ignore[operator]
