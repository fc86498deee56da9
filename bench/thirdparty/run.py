"""Run third-party Channels libraries' own test suites on Channels 4.3.2 and on gateway.

For each library below the script:

1. downloads its source distribution from PyPI with ``pip download`` (the sdist
   holds its ``tests/``);
2. unpacks it twice under ``--workdir`` and adds the support files a suite needs
   but the sdist leaves out (``bench/thirdparty/support/<library>/``: settings,
   test models; written for this harness, they name ``channels`` like the
   library does);
3. applies the porting rename to the second copy, mechanically, with the rules
   in :data:`RENAMES` (docs/porting.md §1): in ``.py`` files, ``from channels…
   import`` / ``import channels…`` and quoted dotted paths (``"channels"``,
   ``"channels.layers.InMemoryChannelLayer"``) become ``gateway…``, and
   ``channels_redis`` becomes ``gateway.layers.redis`` — nothing else (a variable
   named ``channels`` is left alone);
4. runs each copy's suite with pytest in a throwaway virtualenv that sees the
   project's ``.venv`` (gateway, channels, channels_redis, pytest and its plugins,
   through a ``.pth`` file) plus the library's own test dependencies;
5. prints a table: tests passed / total on Channels and on gateway.

channels-postgres' suite needs the PostgreSQL of ``scripts/services`` (127.0.0.1:5432,
the ``postgres`` role, trust authentication). It is slow (it installs packages; about
2 minutes) and not part of ``scripts/test``::

    .venv/bin/python bench/thirdparty/run.py [--workdir /tmp/gateway-thirdparty] [NAME ...]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
import venv
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = Path(__file__).resolve().parent / "support"

#: The porting rename, as (pattern, replacement) applied in order to .py files.
RENAMES: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"^(\s*)from channels_redis(\.[\w.]+)? import\b", re.M),
        r"\1from gateway.layers.redis\2 import",
    ),
    (re.compile(r"^(\s*)from channels(\.[\w.]+)? import\b", re.M), r"\1from gateway\2 import"),
    (
        re.compile(r"^(\s*)import channels_redis(\.[\w.]+)?\b", re.M),
        r"\1import gateway.layers.redis\2",
    ),
    (re.compile(r"^(\s*)import channels(\.[\w.]+)?\b", re.M), r"\1import gateway\2"),
    (re.compile(r"([\"'])channels_redis((?:\.\w+)*)\1"), r"\1gateway.layers.redis\2\1"),
    (re.compile(r"([\"'])channels((?:\.\w+)*)\1"), r"\1gateway\2\1"),
]


@dataclass(frozen=True)
class Library:
    """A library on PyPI whose sdist carries its test suite."""

    name: str
    version: str
    #: What its tests need beyond Django, Channels, pytest and pytest-django/asyncio.
    test_requirements: list[str]
    #: Directories of the unpacked sdist to rename and put on ``PYTHONPATH``.
    sources: list[str] = field(default_factory=lambda: ["."])
    tests: str = "tests"


LIBRARIES = [
    Library("djangochannelsrestframework", "1.3.0", ["djangorestframework>=3.15,<4"]),
    Library("django-channels-jwt-stateless", "0.1.2", ["PyJWT>=2,<3"], sources=["src", "tests"]),
    Library(
        "cypartagraphqlsubscriptionstools",
        "4.1.7",
        ["graphene==3.3", "graphene-django>=3.1", "django-lifecycle", "djangorestframework>=3.14"],
    ),
    # Needs PostgreSQL on 127.0.0.1:5432 (scripts/services starts it).
    Library(
        "channels-postgres",
        "1.1.4",
        ["psycopg[pool]>=3,<4", "msgpack>=1.0.7,<2", "async-timeout", "cryptography", "pytest-cov"],
    ),
]


def rename(path: Path) -> list[Path]:
    """Apply :data:`RENAMES` to every .py file under ``path``; the files changed."""
    changed = []
    for source in sorted(path.rglob("*.py")):
        text = source.read_text()
        renamed = text
        for pattern, replacement in RENAMES:
            renamed = pattern.sub(replacement, renamed)
        if renamed != text:
            source.write_text(renamed)
            changed.append(source)
    return changed


def make_venv(workdir: Path) -> Path:
    """A virtualenv that sees the project's .venv; returns its python."""
    target = workdir / "venv"
    if not (target / "bin" / "python").exists():
        venv.create(target, with_pip=True)
    site = next((target / "lib").glob("python3*/site-packages"))
    project_site = next((ROOT / ".venv" / "lib").glob("python3*/site-packages"))
    # addsitedir (not a plain path) so the project's own .pth files (gateway's
    # editable install) are read too.
    (site / "_gateway_project.pth").write_text(
        f"import site; site.addsitedir({str(project_site)!r})\n"
    )
    return target / "bin" / "python"


def pip(python: Path, *args: str) -> None:
    subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args], check=True)


def unpack(library: Library, downloads: Path, into: Path) -> Path:
    stem = library.name.replace("-", "_")
    archive = next(
        p for p in downloads.glob("*.tar.gz") if p.name.lower().replace("-", "_").startswith(stem)
    )
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    (root,) = into.iterdir()
    support = SUPPORT / library.name
    if support.exists():
        shutil.copytree(support, root, dirs_exist_ok=True)
    return root


SUMMARY = re.compile(r"(\d+) (passed|failed|error|errors)\b")


def run_suite(python: Path, library: Library, root: Path) -> tuple[int, int, str]:
    """(passed, total, pytest's last line) for the suite unpacked at ``root``."""
    env_path = ":".join(str(root / source) for source in library.sources)
    result = subprocess.run(
        [str(python), "-m", "pytest", library.tests, "-q", "-p", "no:cacheprovider"],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": env_path, "HOME": str(root)},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    last = lines[-1] if lines else result.stderr.strip()[-200:]
    counts = {kind: int(n) for n, kind in SUMMARY.findall(last)}
    passed = counts.get("passed", 0)
    total = passed + counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)
    return passed, total, last.strip("= ")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/gateway-thirdparty"))
    parser.add_argument("names", nargs="*", help="libraries to run (default: all)")
    args = parser.parse_args()
    chosen = [lib for lib in LIBRARIES if not args.names or lib.name in args.names]
    workdir: Path = args.workdir
    downloads = workdir / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    python = make_venv(workdir)
    rows = []
    for library in chosen:
        pip(python, "install", "--quiet", *library.test_requirements)
        # --no-binary for this one package only: its build dependencies may be wheels.
        # Downloaded with the project's own pip: in the throwaway virtualenv the
        # isolated build of the sdist's metadata would also see the project's
        # setuptools through the .pth file (too old for channels-postgres' pyproject).
        pip(
            Path(sys.executable),
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            library.name,
            "--dest",
            str(downloads),
            f"{library.name}=={library.version}",
        )
        results = []
        for framework in ("channels", "gateway"):
            root = unpack(library, downloads, workdir / library.name / framework)
            if framework == "gateway":
                for source in library.sources:
                    rename(root / source)
                rename(root / library.tests)
            results.append(run_suite(python, library, root))
        rows.append((library, results))
    print()
    print("| library | version | Channels 4.3.2 | gateway |")
    print("|---|---|---|---|")
    for library, ((cp, ct, _), (gp, gt, _)) in rows:
        print(f"| {library.name} | {library.version} | {cp}/{ct} | {gp}/{gt} |")
    for library, results in rows:
        for framework, (_, _, last) in zip(("channels", "gateway"), results, strict=True):
            print(f"{library.name} on {framework}: {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
