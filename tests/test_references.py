"""No comment, docstring or document points at a file that does not exist.

Paths are the repository-relative ones the code and the docs cite
(``docs/redis.md``, ``tests/gateway/layers/redis/test_faults.py``, ...) and the relative links
of the Markdown documents (``[porting](porting.md)``).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP = ("docs", "tests", "bench", "scripts", "gateway", "protocols", "project")
TOPS = "|".join(TOP)
CITED = re.compile(rf"(?<![\w./-])((?:{TOPS})/[\w./-]+\.(?:py|md|txt|toml|html|css|js|json|yml))")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def sources() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "pyproject.toml"]
    for top in TOP:
        for pattern in ("*.py", "*.md"):
            files += [p for p in (ROOT / top).rglob(pattern) if ".venv" not in p.parts]
    return files


def test_every_cited_path_exists() -> None:
    missing = []
    for source in sources():
        for cited in CITED.findall(source.read_text(encoding="utf-8")):
            if not (ROOT / cited).exists():
                missing.append(f"{source.relative_to(ROOT)} cites {cited}")
    assert not missing, "\n".join(missing)


def test_every_relative_markdown_link_resolves() -> None:
    broken = []
    for source in sources():
        if source.suffix != ".md":
            continue
        for target in LINK.findall(source.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
                continue
            if not (source.parent / target).exists():
                broken.append(f"{source.relative_to(ROOT)} links {target}")
    assert not broken, "\n".join(broken)
