"""`faaspool new`: every starter project, generated into a temp dir through the CLI, passes
its own tests in a fresh interpreter, and its deployment configuration checks out."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from faaspool.adapters.azure import parse_timespan

import faaspool
from faaspool import scaffold

PLATFORMS = ["lambda", "gcf", "azure"]
NAME = "orders-api"
RUN_TIMEOUT = 180


def clean_env() -> dict[str, str]:
    """This environment without anything that would reach a generated project's tests:
    no Redis settings, no pytest or xdist state of the suite running this file."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_URL", "FAASPOOL_", "PYTEST_", "PYTHONPATH", "AWS_"))
    }


def faaspool_new(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faaspool.cli", "new", *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=clean_env(),
    )


@pytest.fixture(scope="module", params=PLATFORMS)
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    platform: str = request.param
    directory = tmp_path_factory.mktemp(platform) / "project"
    made = faaspool_new(platform, str(directory), "--name", NAME)
    assert made.returncode == 0, made.stderr
    assert f"Created {scaffold.PLATFORMS[platform][0]} project {NAME!r}" in made.stdout
    return directory


def test_the_generated_projects_own_tests_pass(project: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=clean_env(),
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "4 passed" in run.stdout, run.stdout[-2000:]


def test_every_placeholder_is_filled_in(project: Path) -> None:
    texts = {p: p.read_text() for p in project.rglob("*") if p.is_file()}
    leftover = [str(p) for p, text in texts.items() if "{{name}}" in text or "{{faaspool" in text]
    assert leftover == []
    assert NAME in texts[project / "README.md"]
    assert f"faaspool[hiredis]~={faaspool.__version__}" in texts[project / "requirements.txt"]
    assert not any("__pycache__" in p.parts for p in texts)


def test_lambda_sam_template_passes_cfn_lint_and_wires_the_cache(tmp_path: Path) -> None:
    pytest.importorskip("cfnlint", reason="cfn-lint is not installed")
    from cfnlint.decode import decode

    directory = tmp_path / "svc"
    scaffold.create("lambda", directory, NAME)
    lint = subprocess.run(
        [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())",
         str(directory / "template.yaml")],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert lint.returncode == 0, lint.stdout + lint.stderr

    template, errors = decode(str(directory / "template.yaml"))
    assert not errors
    function = template["Globals"]["Function"]
    redis_url = function["Environment"]["Variables"]["REDIS_URL"]["Fn::Sub"]
    assert redis_url.startswith("rediss://${Cache.PrimaryEndPoint.Address}")
    assert function["VpcConfig"]["SubnetIds"] == {"Ref": "SubnetIds"}
    resources = template["Resources"]
    assert resources["Cache"]["Type"] == "AWS::ElastiCache::ReplicationGroup"
    assert resources["Cache"]["Properties"]["TransitEncryptionEnabled"] is True
    api = resources["ApiFunction"]["Properties"]
    assert api["Handler"] == "app.handler"
    assert api["SnapStart"]["ApplyOn"] == {"Fn::If": ["SnapStartOn", "PublishedVersions", "None"]}
    assert template["Parameters"]["EnableSnapStart"]["Default"] == "false"
    assert NAME in template["Description"]


def test_gcf_deploy_script_passes_vpc_connector_concurrency_and_timeout(tmp_path: Path) -> None:
    directory = tmp_path / "svc"
    scaffold.create("gcf", directory, NAME)
    script = directory / "deploy.sh"
    assert script.stat().st_mode & stat.S_IXUSR
    # A stand-in for the gcloud CLI that records its arguments: what deploy.sh would run.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "gcloud-args.json"
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(record)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
    )
    gcloud.chmod(0o755)
    env = clean_env()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    missing = subprocess.run(
        [str(script)], capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env
    )
    assert missing.returncode != 0 and "REDIS_URL" in missing.stderr
    env.update({"REDIS_URL": "redis://10.0.0.3:6379/0", "CONCURRENCY": "16"})
    done = subprocess.run(
        [str(script), "--project=demo"], capture_output=True, text=True, timeout=RUN_TIMEOUT,
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    args = json.loads(record.read_text())
    assert args[:3] == ["functions", "deploy", NAME]
    for expected in (
        "--gen2",
        "--entry-point=handler",
        "--trigger-http",
        "--vpc-connector=redis-connector",
        "--egress-settings=private-ranges-only",
        "--concurrency=16",
        "--timeout=60s",
        "--set-env-vars=REDIS_URL=redis://10.0.0.3:6379/0,CLOUD_RUN_TIMEOUT_SECONDS=60,THREADS=16",
        "--project=demo",
    ):
        assert expected in args, (expected, args)
    vendored = "--set-build-env-vars=GOOGLE_VENDOR_PIP_DEPENDENCIES=vendor"
    assert vendored not in args
    # Unpacked from `make package`, the source carries its dependencies as wheels.
    (directory / "vendor").mkdir()
    again = subprocess.run(
        [str(script)], capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env
    )
    assert again.returncode == 0, again.stderr
    assert vendored in json.loads(record.read_text())
    assert "def handler(" in (directory / "main.py").read_text()


def test_azure_host_json_and_local_settings(tmp_path: Path) -> None:
    directory = tmp_path / "svc"
    scaffold.create("azure", directory, NAME)
    host = json.loads((directory / "host.json").read_text())
    assert host["version"] == "2.0"
    assert parse_timespan(host["functionTimeout"]) == 60
    settings = json.loads((directory / "local.settings.json.example").read_text())
    assert settings["Values"]["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert settings["Values"]["REDIS_URL"].startswith("redis://")
    ignored = (directory / ".funcignore").read_text().split()
    assert "tests/" in ignored and "local.settings.json" in ignored


# -- the command's rules ----------------------------------------------------------------------


@pytest.fixture
def occupied(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "busy"
    directory.mkdir()
    (directory / "keep.txt").write_text("mine")
    yield directory
    assert (directory / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in directory.iterdir()) == ["keep.txt"]


def test_a_non_empty_directory_is_refused_and_left_alone(occupied: Path) -> None:
    run = faaspool_new("lambda", str(occupied))
    assert run.returncode == 1
    assert "is not empty" in run.stderr and "keep.txt" in run.stderr
    assert "never overwrites" in run.stderr
    assert run.stdout == ""


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    run = faaspool_new("gcf", str(target))
    assert run.returncode == 1 and "not a directory" in run.stderr
    assert target.read_text() == "x"


def test_an_existing_empty_directory_is_used(tmp_path: Path) -> None:
    directory = tmp_path / "empty"
    directory.mkdir()
    written = scaffold.create("azure", directory, "my-app")
    assert directory / "function_app.py" in written
    assert (directory / "host.json").is_file()


def test_the_name_comes_from_the_directory_unless_given(tmp_path: Path) -> None:
    directory = tmp_path / "My Shop_API"
    run = faaspool_new("lambda", str(directory))
    assert run.returncode == 0, run.stderr
    assert "project 'my-shop-api'" in run.stdout
    assert 'stack_name = "my-shop-api"' in (directory / "samconfig.toml").read_text()


@pytest.mark.parametrize("bad", ["Orders", "9lives", "has_underscore", "ends-", "x" * 64])
def test_an_invalid_name_is_refused_before_anything_is_written(tmp_path: Path, bad: str) -> None:
    directory = tmp_path / "svc"
    with pytest.raises(scaffold.ScaffoldError, match="invalid project name"):
        scaffold.create("gcf", directory, bad)
    assert not directory.exists()


def test_a_directory_name_without_letters_needs_name(tmp_path: Path) -> None:
    run = faaspool_new("azure", str(tmp_path / "___"))
    assert run.returncode == 1 and "--name" in run.stderr


def test_an_unknown_platform_is_a_usage_error() -> None:
    run = faaspool_new("heroku", "somewhere")
    assert run.returncode == 2 and "invalid choice" in run.stderr
    with pytest.raises(scaffold.ScaffoldError, match="unknown platform"):
        scaffold.create("heroku", Path("somewhere"))
