"""``faaspool new <lambda|gcf|azure> DIR [--name NAME]``: create a starter project.

The starter projects ship with faaspool (``faaspool/templates/<platform>`` in the wheel,
``templates/<platform>`` in a checkout). Copying one fills in ``{{name}}`` (the project
name) and ``{{faaspool_version}}``; it never writes into a directory that has anything in
it.
"""

from __future__ import annotations

import argparse
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from . import __version__

__all__ = ["PLATFORMS", "ScaffoldError", "add_arguments", "create", "project_name", "run"]

#: platform -> (what it is, the file that marks its template).
PLATFORMS = {
    "lambda": ("AWS Lambda", "app.py"),
    "gcf": ("Google Cloud Functions", "main.py"),
    "azure": ("Azure Functions", "function_app.py"),
}

# The strictest of the three platforms' naming rules (a Cloud Run function name), so one
# name works as a CloudFormation stack, a Cloud Run function and an Azure function app.
_NAME = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
_SKIPPED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
_EXECUTABLE_SUFFIXES = (".sh",)

_NEXT_STEPS = {
    "lambda": (
        "python -m pip install -r requirements-dev.txt",
        "python -m pytest",
        "sam build && sam deploy --parameter-overrides VpcId=vpc-... SubnetIds=subnet-a,subnet-b",
    ),
    "gcf": (
        "python -m pip install -r requirements-dev.txt",
        "python -m pytest",
        "REDIS_URL=redis://10.0.0.3:6379/0 VPC_CONNECTOR=my-connector ./deploy.sh",
    ),
    "azure": (
        "python -m pip install -r requirements-dev.txt",
        "python -m pytest",
        "cp local.settings.json.example local.settings.json && func start",
    ),
}


class ScaffoldError(Exception):
    """The project cannot be created; the message says why and what to do."""


@dataclass(frozen=True)
class _File:
    relative: Path
    text: str
    executable: bool


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``faaspool new``'s arguments on ``parser``."""
    parser.add_argument(
        "platform",
        choices=sorted(PLATFORMS),
        help="lambda (AWS Lambda + SAM), gcf (Google Cloud Functions) or azure (Azure Functions)",
    )
    parser.add_argument(
        "directory", metavar="DIR", type=Path, help="where to create the project (new or empty)"
    )
    parser.add_argument(
        "--name",
        help="the project's name: lowercase letters, digits and hyphens, starting with a "
        "letter, at most 63 characters (default: derived from DIR)",
    )


def run(args: argparse.Namespace) -> int:
    """Create the project that ``args`` describe; print what was written and what next.

    Returns 0 on success, 1 (with the reason on stderr) when nothing was written.
    """
    platform: str = args.platform
    directory: Path = args.directory
    try:
        written = create(platform, directory, args.name)
    except ScaffoldError as exc:
        print(f"faaspool new: {exc}", file=sys.stderr)
        return 1
    name = args.name or project_name(directory)
    label = PLATFORMS[platform][0]
    print(f"Created {label} project {name!r} in {directory} ({len(written)} files):")
    for path in written:
        print(f"  {path.relative_to(directory)}")
    print("\nNext:")
    print(f"  cd {directory}")
    for step in _NEXT_STEPS[platform]:
        print(f"  {step}")
    return 0


def create(platform: str, directory: Path, name: str | None = None) -> list[Path]:
    """Copy ``platform``'s starter project into ``directory``; return the files written.

    ``name`` defaults to one derived from the directory's name. Raises `ScaffoldError`
    (and writes nothing) for an unknown platform, a bad name, or a directory that exists
    and is not empty.
    """
    if platform not in PLATFORMS:
        raise ScaffoldError(
            f"unknown platform {platform!r}: choose one of {', '.join(sorted(PLATFORMS))}"
        )
    name = check_name(name) if name is not None else project_name(directory)
    _check_target(directory)
    files = _render(_template_dir(platform), {"name": name, "faaspool_version": __version__})
    written = []
    for file in files:
        path = directory / file.relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(file.text, encoding="utf-8")
        if file.executable:
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        written.append(path)
    return written


def check_name(name: str) -> str:
    """``name`` if it is a valid project name, else raise `ScaffoldError`."""
    if not _NAME.fullmatch(name):
        raise ScaffoldError(
            f"invalid project name {name!r}: use lowercase letters, digits and hyphens, "
            f"starting with a letter and not ending with a hyphen, at most 63 characters "
            f"(it names the CloudFormation stack, the Cloud Run function or the Azure "
            f"function app)"
        )
    return name


def project_name(directory: Path) -> str:
    """The project name derived from ``directory``'s last component, or `ScaffoldError`."""
    base = directory.expanduser().resolve().name
    derived = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")[:63].rstrip("-")
    if not _NAME.fullmatch(derived):
        raise ScaffoldError(
            f"cannot derive a project name from the directory name {base!r}: pass "
            f"--name NAME (lowercase letters, digits and hyphens, starting with a letter)"
        )
    return derived


def _check_target(directory: Path) -> None:
    if directory.is_symlink() and not directory.exists():
        raise ScaffoldError(f"{directory} is a dangling symbolic link")
    if not directory.exists():
        return
    if not directory.is_dir():
        raise ScaffoldError(f"{directory} exists and is not a directory")
    entries = sorted(p.name for p in directory.iterdir())
    if entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ScaffoldError(
            f"{directory} is not empty ({len(entries)} entries: {shown}); faaspool new "
            f"never overwrites files: choose a new directory, or empty this one first"
        )


def _template_dir(platform: str) -> Path:
    marker = PLATFORMS[platform][1]
    package = Path(__file__).resolve().parent
    candidates = [package / "templates" / platform]
    if (package.parent / "pyproject.toml").is_file():
        # A source checkout (or an editable install of one): templates/ is beside faaspool/.
        candidates.append(package.parent / "templates" / platform)
    for candidate in candidates:
        if (candidate / marker).is_file():
            return candidate
    raise ScaffoldError(
        f"the {platform} template is missing from this faaspool installation "
        f"(looked in {', '.join(str(c) for c in candidates)}): reinstall faaspool"
    )


def _render(root: Path, values: dict[str, str]) -> list[_File]:
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or _SKIPPED_DIRS.intersection(relative.parts):
            continue
        if path.suffix in _SKIPPED_SUFFIXES:
            continue
        text = path.read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        executable = path.suffix in _EXECUTABLE_SUFFIXES or bool(path.stat().st_mode & stat.S_IXUSR)
        files.append(_File(relative, text, executable))
    return files
