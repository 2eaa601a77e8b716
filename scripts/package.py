"""Build a deployment zip for AWS Lambda, Google Cloud Functions or Azure Functions.

    python scripts/package.py --platform lambda|gcf|azure [--app DIR] [--arch x86_64|arm64]
                              [--python 3.12] [--out dist] [--cache-dir DIR]

(``make package PLATFORM=... [APP=...] [ARCH=...] [PYTHON=...]`` runs it.) It writes
``<out>/<platform>-<app>.zip``, laid out the way the platform deploys it:

    lambda   the app's modules and every dependency at the zip root
    azure    function_app.py, host.json, requirements.txt at the root; dependencies in
             .python_packages/lib/site-packages
    gcf      the app's source and requirements.txt, with every dependency as a wheel in
             vendor/, for a build with GOOGLE_VENDOR_PIP_DEPENDENCIES=vendor

Dependencies are the app's requirements.txt, resolved by pip for the target (Linux, the
given architecture and Python, binary wheels only), never the build machine's own
compiled packages; faaspool itself is built as a wheel from this checkout. Tests,
``__pycache__``, console scripts and local-development files are left out. The zip is
reproducible: same inputs, same bytes (sorted entries, fixed timestamps and permissions).
Its size is printed against the platform's limits, and the build fails past them.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

try:
    from packaging.requirements import InvalidRequirement, Requirement
except ImportError:  # pip always vendors it
    from pip._vendor.packaging.requirements import (  # type: ignore[assignment]
        InvalidRequirement,
        Requirement,
    )

REPO_ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
# The zip's timestamp when SOURCE_DATE_EPOCH is unset: the earliest a zip can store.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
PYTHON_VERSIONS = ("3.10", "3.11", "3.12", "3.13")
ARCHES = {"x86_64": "x86_64", "arm64": "aarch64"}


@dataclass(frozen=True)
class Platform:
    """What one platform's package looks like and how big it may be."""

    name: str
    entry: tuple[str, ...]  # files the app must have (a glob for Lambda)
    site: str | None  # where dependencies go inside the zip; None: wheels in vendor/
    arches: tuple[str, ...]
    max_zipped_mb: float
    max_unzipped_mb: float | None
    limit_source: str
    dev_files: frozenset[str]  # the app's files that only local development uses
    keep_requirements: bool


PLATFORMS = {
    "lambda": Platform(
        name="AWS Lambda",
        entry=("*.py",),
        site="",
        arches=("x86_64", "arm64"),
        max_zipped_mb=50,
        max_unzipped_mb=250,
        limit_source="Lambda quotas: 50 MB zipped for direct upload, 250 MB unzipped",
        dev_files=frozenset({"template.yaml", "template.yml", "samconfig.toml"}),
        keep_requirements=False,
    ),
    "gcf": Platform(
        name="Google Cloud Functions",
        entry=("main.py",),
        site=None,
        arches=("x86_64",),
        max_zipped_mb=100,
        max_unzipped_mb=500,
        limit_source=(
            "Cloud Run functions quotas: 100 MB compressed source, 500 MB uncompressed "
            "source and modules"
        ),
        dev_files=frozenset({".gcloudignore", "env.yaml"}),
        keep_requirements=True,
    ),
    "azure": Platform(
        name="Azure Functions",
        entry=("function_app.py", "host.json"),
        site=".python_packages/lib/site-packages",
        arches=("x86_64",),
        max_zipped_mb=2048,
        max_unzipped_mb=None,
        limit_source="Azure Functions zip deployment: 2048 MB",
        dev_files=frozenset({"local.settings.json", "local.settings.json.example", ".funcignore"}),
        keep_requirements=True,
    ),
}

# Of the app's own files, these never run on the platform (hidden files neither).
_SKIPPED_DIRS = frozenset({"__pycache__", "tests", "test", "dist", "build", "node_modules"})
_SKIPPED_FILES = frozenset(
    {"conftest.py", "pytest.ini", "tox.ini", "setup.cfg", "README.md", "README.rst",
     "requirements-dev.txt"}
)  # fmt: skip
_SKIPPED_SUFFIXES = (".pyc", ".pyo", ".log")
# Build leftovers and caches in the checkout, which must not reach faaspool's wheel.
_BUILD_SKIP = frozenset(
    {".git", "dist", "build", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
     "node_modules"}
)  # fmt: skip


class PackageError(Exception):
    """The package cannot be built; the message says why."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="package.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--platform", required=True, choices=sorted(PLATFORMS))
    parser.add_argument(
        "--app", type=Path, help="the app's directory (default: examples/<platform>)"
    )
    parser.add_argument("--arch", default="x86_64", choices=sorted(ARCHES))
    parser.add_argument(
        "--python", default="3.12", choices=PYTHON_VERSIONS, help="the target's Python"
    )
    parser.add_argument("--out", type=Path, default=Path("dist"), help="output directory")
    parser.add_argument("--name", help="the app's name in the zip's file name (default: --app's)")
    parser.add_argument(
        "--cache-dir", type=Path, help="pip's cache, and built faaspool wheels (default: pip's)"
    )
    parser.add_argument(
        "--max-zipped-mb", type=float, help="fail above this zipped size (default: the platform's)"
    )
    parser.add_argument(
        "--max-unzipped-mb",
        type=float,
        help="fail above this unzipped size (default: the platform's)",
    )
    args = parser.parse_args(argv)
    try:
        report = build(
            args.platform,
            app=args.app or REPO_ROOT / "examples" / args.platform,
            arch=args.arch,
            python=args.python,
            out=args.out,
            name=args.name,
            cache_dir=args.cache_dir,
            max_zipped_mb=args.max_zipped_mb,
            max_unzipped_mb=args.max_unzipped_mb,
        )
    except PackageError as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 1
    print(report)
    return 0


def build(
    platform_name: str,
    *,
    app: Path,
    arch: str = "x86_64",
    python: str = "3.12",
    out: Path = Path("dist"),
    name: str | None = None,
    cache_dir: Path | None = None,
    max_zipped_mb: float | None = None,
    max_unzipped_mb: float | None = None,
) -> str:
    """Build the package; return the size report, or raise `PackageError`."""
    platform = PLATFORMS[platform_name]
    app = app.resolve()
    _check_app(platform, app)
    if arch not in platform.arches:
        raise PackageError(f"{platform.name} runs {' and '.join(platform.arches)} only, not {arch}")
    name = name or app.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise PackageError(f"{name!r} cannot name a zip: use letters, digits, '.', '_', '-'")
    out = out.resolve()
    target = out / f"{platform_name}-{name}.zip"
    with tempfile.TemporaryDirectory(prefix="faaspool-package-") as tmp:
        work = Path(tmp)
        wheel = build_faaspool_wheel(work / "wheel", cache_dir)
        requirements = read_requirements(app / "requirements.txt", wheel)
        stage = work / "stage"
        stage.mkdir()
        if platform.site is None:
            _download_wheels(stage / "vendor", requirements, arch, python, platform_name, cache_dir)
        else:
            site = stage / platform.site
            _install(site, requirements, arch, python, platform_name, cache_dir)
            _prune_site(site)
        _copy_app(platform, app, stage, exclude=[out])
        if platform.keep_requirements:
            (stage / "requirements.txt").write_text(requirements.rewritten)
        files = sorted(_tree(stage))
        unzipped = sum((stage / f).stat().st_size for f in files)
        out.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".zip.partial")
        write_zip(partial, stage, files)
        os.replace(partial, target)
    zipped = target.stat().st_size
    limit_zipped = platform.max_zipped_mb if max_zipped_mb is None else max_zipped_mb
    limit_unzipped = platform.max_unzipped_mb if max_unzipped_mb is None else max_unzipped_mb
    shown = _display(target)
    report = (
        f"{shown}: {zipped / MB:.2f} MB zipped (limit {limit_zipped:g} MB)"
        + (
            f", {unzipped / MB:.2f} MB unzipped (limit {limit_unzipped:g} MB)"
            if limit_unzipped is not None
            else f", {unzipped / MB:.2f} MB unzipped"
        )
        + f"; {len(files)} files, {platform.name}, Python {python}, {arch}"
    )
    over = []
    if zipped > limit_zipped * MB:
        over.append(f"zipped {zipped / MB:.2f} MB > {limit_zipped:g} MB")
    if limit_unzipped is not None and unzipped > limit_unzipped * MB:
        over.append(f"unzipped {unzipped / MB:.2f} MB > {limit_unzipped:g} MB")
    if over:
        target.unlink()
        raise PackageError(
            f"{report}\n{shown} is too large for {platform.name} ({'; '.join(over)}; "
            f"{platform.limit_source}) and was removed: trim the dependencies in "
            f"{_display(app / 'requirements.txt')}"
        )
    return report


# -- the app ----------------------------------------------------------------------------------


def _check_app(platform: Platform, app: Path) -> None:
    if not app.is_dir():
        raise PackageError(f"{_display(app)} is not a directory")
    for entry in platform.entry:
        if not any(app.glob(entry)):
            raise PackageError(f"{_display(app)} has no {entry}: is it a {platform.name} app?")


def _copy_app(platform: Platform, app: Path, stage: Path, exclude: Iterable[Path]) -> None:
    excluded = [p.resolve() for p in exclude]
    for path in sorted(app.rglob("*")):
        relative = path.relative_to(app)
        if any(path == e or e in path.parents for e in excluded):
            continue
        if path.is_dir() or not _ships(platform, relative):
            continue
        destination = stage / relative
        if destination.exists():
            raise PackageError(
                f"{_display(path)} would overwrite {relative} of a dependency: rename it"
            )
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        shutil.copymode(path, destination)


def _ships(platform: Platform, relative: Path) -> bool:
    parts = relative.parts
    if any(p in _SKIPPED_DIRS or p.startswith(".") for p in parts[:-1]):
        return False
    name = parts[-1]
    if name in _SKIPPED_FILES or name in platform.dev_files or name.endswith(_SKIPPED_SUFFIXES):
        return False
    if name.startswith("."):
        return False
    if (name.startswith("test_") and name.endswith(".py")) or name.endswith("_test.py"):
        return False
    # Written for the target by this script.
    return name != "requirements.txt" or len(parts) > 1


# -- requirements -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirements:
    """The app's requirements, with faaspool pointing at the wheel built from this checkout."""

    install: list[str]  # arguments for pip: the wheel (with extras) and the others
    rewritten: str  # requirements.txt for the package, faaspool pinned to the wheel's version


def read_requirements(path: Path, wheel: Path) -> Requirements:
    """Read ``path`` (one requirement a line; comments allowed); add faaspool if missing."""
    version = wheel.name.split("-")[1]
    lines = path.read_text().splitlines() if path.is_file() else []
    install: list[str] = []
    rewritten: list[str] = []
    found = False
    for number, raw in enumerate(lines, 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            rewritten.append(raw)
            continue
        if line.startswith("-"):
            raise PackageError(
                f"{_display(path)}:{number}: pip options ({line.split()[0]}) are not supported "
                f"here: list one requirement a line"
            )
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise PackageError(f"{_display(path)}:{number}: {exc}") from None
        if _canonical(requirement.name) != "faaspool":
            install.append(line)
            rewritten.append(line)
            continue
        found = True
        if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
            raise PackageError(
                f"{_display(path)}:{number}: {line!r} excludes faaspool {version}, the version "
                f"of this checkout"
            )
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        marker = f"; {requirement.marker}" if requirement.marker else ""
        install.append(f"{wheel}{extras}{marker}")
        rewritten.append(f"faaspool{extras}=={version}{marker}")
    if not found:
        install.insert(0, f"{wheel}[hiredis]")
        rewritten.insert(0, f"faaspool[hiredis]=={version}")
    return Requirements(install, "\n".join(rewritten) + "\n")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# -- faaspool's own wheel ---------------------------------------------------------------------


def build_faaspool_wheel(directory: Path, cache_dir: Path | None) -> Path:
    """faaspool built as a wheel from a clean copy of this checkout (cached by content)."""
    source = directory / "source"
    digest = _copy_checkout(REPO_ROOT, source)
    cached = None if cache_dir is None else cache_dir.resolve() / "faaspool-wheels" / digest
    if cached is not None:
        found = sorted(cached.glob("faaspool-*.whl"))
        if found:
            return found[0]
    built = directory / "built"
    _pip("wheel", "--no-deps", "--wheel-dir", str(built), str(source), cache_dir=cache_dir)
    wheels = sorted(built.glob("faaspool-*.whl"))
    if len(wheels) != 1:
        raise PackageError(f"building faaspool's wheel made {[w.name for w in wheels]}")
    if cached is None:
        return wheels[0]
    cached.mkdir(parents=True, exist_ok=True)
    final = cached / wheels[0].name
    shutil.copyfile(wheels[0], final.with_suffix(".partial"))
    os.replace(final.with_suffix(".partial"), final)
    return final


def _copy_checkout(root: Path, target: Path) -> str:
    # A copy, so the build sees no stale build/ or egg-info of earlier builds.
    digest = hashlib.sha256()
    for path in sorted(_checkout_files(root, root)):
        relative = path.relative_to(root)
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        digest.update(relative.as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:32]


def _checkout_files(root: Path, directory: Path) -> Iterator[Path]:
    for entry in sorted(directory.iterdir()):
        name = entry.name
        if name in _BUILD_SKIP or name.endswith(".egg-info"):
            continue
        if directory == root and name.startswith((".venv", ".")):
            continue
        if entry.is_symlink():
            continue
        if entry.is_dir():
            yield from _checkout_files(root, entry)
        elif entry.is_file() and not name.endswith(_SKIPPED_SUFFIXES):
            yield entry


# -- dependencies for the target --------------------------------------------------------------


def target_options(arch: str, python: str, platform_name: str) -> list[str]:
    """pip's options selecting binary wheels for the platform's Linux, arch and Python."""
    machine = ARCHES[arch]
    glibc = _max_glibc(platform_name, python)
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(glibc, 16, -1)]
    tags.append(f"manylinux2014_{machine}")
    nodot = python.replace(".", "")
    options = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python]
    options += ["--abi", f"cp{nodot}"]
    for tag in tags:
        options += ["--platform", tag]
    return options


def _max_glibc(platform_name: str, python: str) -> int:
    # The glibc of the platform's Linux for that Python: Lambda's python3.12+ runtimes are
    # Amazon Linux 2023 (2.34), older ones Amazon Linux 2 (2.26). Cloud Run functions and
    # Azure's images are newer than 2.28; no wheel of interest needs more.
    if platform_name == "lambda":
        return 34 if python >= "3.12" else 26
    return 28


def _install(
    site: Path, requirements: Requirements, arch: str, python: str, platform: str,
    cache_dir: Path | None,
) -> None:  # fmt: skip
    site.mkdir(parents=True, exist_ok=True)
    _pip(
        "install", "--target", str(site), "--no-compile", "--no-warn-script-location",
        *target_options(arch, python, platform), *requirements.install, cache_dir=cache_dir,
    )  # fmt: skip


def _download_wheels(
    vendor: Path, requirements: Requirements, arch: str, python: str, platform: str,
    cache_dir: Path | None,
) -> None:  # fmt: skip
    vendor.mkdir(parents=True)
    _pip(
        "download", "--dest", str(vendor),
        *target_options(arch, python, platform), *requirements.install, cache_dir=cache_dir,
    )  # fmt: skip


def _pip(*args: str, cache_dir: Path | None) -> None:
    command = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--quiet"]
    if cache_dir is not None:
        command += ["--cache-dir", str(cache_dir.resolve())]
    env = dict(os.environ, PIP_NO_INPUT="1")
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    if result.returncode != 0:
        details = (result.stderr or result.stdout).strip()
        hint = ""
        if "--only-binary" in command or "matching distribution" in details:
            hint = (
                "\nEvery dependency needs a binary wheel (or a pure-Python one) for the "
                "target: Linux, the given --arch and --python."
            )
        raise PackageError(f"pip {args[0]} failed:\n{details[-3000:]}{hint}")


def _prune_site(site: Path) -> None:
    """Drop what the target never runs, and keep each RECORD true to what is left."""
    doomed: list[Path] = []
    for path in site.iterdir():
        # Console scripts carry the build machine's interpreter; a top-level tests package
        # is a packaging mistake of some dependency.
        if path.name in ("bin", "tests", "test") and path.is_dir():
            doomed.append(path)
    doomed.extend(p for p in site.rglob("__pycache__") if p.is_dir())
    doomed.extend(p for p in site.glob("*.dist-info/direct_url.json"))  # a local path
    templates = site / "faaspool" / "templates"
    if templates.is_dir():
        doomed.append(templates)  # `faaspool new`'s starter projects: no function uses them
    for path in doomed:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for path in site.rglob("*"):
        if path.is_file() and path.name.endswith(_SKIPPED_SUFFIXES):
            path.unlink()
    for record in site.glob("*.dist-info/RECORD"):
        _rewrite_record(site, record)


def _rewrite_record(site: Path, record: Path) -> None:
    rows = list(csv.reader(io.StringIO(record.read_text())))
    kept = [row for row in rows if row and (site / row[0]).resolve().is_file()]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(kept)
    record.write_text(buffer.getvalue())


# -- the zip ----------------------------------------------------------------------------------


def _tree(root: Path) -> Iterator[str]:
    for path in root.rglob("*"):
        if path.is_file():
            yield path.relative_to(root).as_posix()


def write_zip(target: Path, root: Path, files: Sequence[str]) -> None:
    """Zip ``files`` (posix paths under ``root``) reproducibly: sorted, with their
    directories, one timestamp, and permissions 0644 (0755 for executables and dirs)."""
    stamp = _timestamp()
    directories = sorted(
        {str(parent) for f in files for parent in PurePosixPath(f).parents if str(parent) != "."}
    )
    entries = sorted([(d + "/", True) for d in directories] + [(f, False) for f in files])
    with zipfile.ZipFile(target, "w") as archive:
        for name, is_dir in entries:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.create_system = 3  # unix, whatever builds it, so the modes below apply
            if is_dir:
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                archive.writestr(info, b"")
                continue
            path = root / name
            executable = path.stat().st_mode & stat.S_IXUSR
            info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)


def _timestamp() -> tuple[int, int, int, int, int, int]:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return ZIP_EPOCH
    moment = time.gmtime(max(int(epoch), 315532800))  # not before 1980, zip's own epoch
    return moment[:6]


def _display(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)


if __name__ == "__main__":
    sys.exit(main())
