"""scripts/package.py (`make package`): each platform's zip, unpacked into a clean directory,
runs its handler in an isolated interpreter that sees nothing but the package (and the
standard library), against a real redis-server; the Lambda zip goes through boto3 to moto's
CreateFunction; builds are reproducible; a package past the platform's limit fails.

Packages are built once per test session (shared by xdist workers through a file lock),
for this machine's Python and architecture so that their compiled wheels can be loaded."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import importlib.util
import io
import json
import os
import platform
import re
import stat
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import faaspool
from tests.support.server import RedisServer

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "package.py"
LOCAL_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
LOCAL_ARCH = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
BUILD_TIMEOUT = 600
RUN_TIMEOUT = 120


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("faaspool_package_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first: its dataclasses look their module up while being created.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


package_script = load_script()


@dataclass(frozen=True)
class Build:
    returncode: int
    stdout: str
    stderr: str
    zip: Path

    def check(self) -> Build:
        assert self.returncode == 0, self.stdout + self.stderr
        return self

    def names(self) -> list[str]:
        with zipfile.ZipFile(self.zip) as archive:
            return archive.namelist()


class Packages:
    """Builds with scripts/package.py, each distinct build once per session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache = root / "pip-cache"
        root.mkdir(parents=True, exist_ok=True)

    def build(self, key: str, platform_name: str, *args: str) -> Build:
        folder = self.root / key
        out = folder / "dist"
        with open(self.root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            done = folder / "result.json"
            if not done.exists():
                run = subprocess.run(
                    [
                        sys.executable, str(SCRIPT), "--platform", platform_name,
                        "--out", str(out), "--cache-dir", str(self.cache), *args,
                    ],
                    capture_output=True, text=True, timeout=BUILD_TIMEOUT, cwd=REPO_ROOT,
                )  # fmt: skip
                folder.mkdir(parents=True, exist_ok=True)
                done.write_text(json.dumps([run.returncode, run.stdout, run.stderr]))
            returncode, stdout, stderr = json.loads(done.read_text())
        zips = sorted(out.glob("*.zip"))
        return Build(returncode, stdout, stderr, zips[0] if zips else out / "missing.zip")


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Packages:
    base = tmp_path_factory.getbasetemp()
    # xdist workers each have a basetemp under one directory of the run: share that.
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return Packages(shared / "faaspool-packages")


def local(packages: Packages, platform_name: str) -> Build:
    if LOCAL_ARCH is None:
        pytest.skip(f"no Lambda/Linux architecture for this machine ({platform.machine()})")
    return packages.build(
        f"{platform_name}-local", platform_name, "--python", LOCAL_PYTHON, "--arch", LOCAL_ARCH
    ).check()


def unpack(build: Build, directory: Path) -> Path:
    directory.mkdir(parents=True)
    with zipfile.ZipFile(build.zip) as archive:
        archive.extractall(directory)
    return directory


def run_isolated(paths: list[Path], code: str, env: dict[str, str]) -> Any:
    """Run ``code`` in ``python -I -S``: no site-packages, no PYTHON* variables, nothing on
    sys.path but the standard library and ``paths``. It must print one JSON document; it
    also fails if any module it imported came from anywhere else."""
    prelude = textwrap.dedent(
        f"""
        import json, sys, sysconfig
        ROOTS = {[str(p) for p in paths]!r}
        sys.path[:0] = ROOTS
        """
    )
    epilogue = textwrap.dedent(
        """
        stdlib = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib")}
        strays = sorted(
            f"{name}: {module.__file__}"
            for name, module in list(sys.modules.items())
            if getattr(module, "__file__", None)
            and not module.__file__.startswith(tuple(ROOTS) + tuple(stdlib))
        )
        assert not strays, strays
        """
    )
    script = prelude + textwrap.dedent(code) + epilogue
    base_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    run = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        cwd=paths[0],
        env={**base_env, **env},
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


# -- layout ----------------------------------------------------------------------------------


def test_lambda_zip_has_the_handler_and_every_dependency_at_its_root(packages: Packages) -> None:
    build = local(packages, "lambda")
    names = set(build.names())
    expected = {
        "app.py",
        "shop.py",
        "faaspool/__init__.py",
        "faaspool/adapters/aws_lambda.py",
        "redis/__init__.py",
        "hiredis/__init__.py",
        "aws_lambda_powertools/__init__.py",
    }
    assert expected <= names, expected - names
    so = [n for n in names if n.startswith("hiredis/") and n.endswith(".so")]
    tag = LOCAL_PYTHON.replace(".", "")
    assert len(so) == 1 and f"cpython-{tag}-" in so[0], so
    # The size, against Lambda's limits, is part of the report.
    limits = r"MB zipped \(limit 50 MB\), [\d.]+ MB unzipped \(limit 250 MB\)"
    assert re.search(limits, build.stdout), build.stdout


def test_nothing_but_what_runs_is_shipped(packages: Packages) -> None:
    for name in ("lambda", "gcf", "azure"):
        for entry in local(packages, name).names():
            parts = entry.rstrip("/").split("/")
            assert "__pycache__" not in parts and not entry.endswith(".pyc"), entry
            assert "tests" not in parts and not parts[-1].startswith("test_"), entry
            assert parts[0] != "bin" and "templates" not in parts, entry
            assert not entry.endswith("direct_url.json"), entry
            assert parts[-1] not in ("template.yaml", "local.settings.json.example"), entry


def test_entries_are_sorted_with_one_timestamp_and_fixed_modes(packages: Packages) -> None:
    build = local(packages, "gcf")
    with zipfile.ZipFile(build.zip) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    modes = {i.filename: stat.S_IMODE(i.external_attr >> 16) for i in infos}
    assert modes["main.py"] == 0o644 and modes["deploy.sh"] == 0o755
    assert modes["vendor/"] == 0o755


def test_an_arm64_lambda_gets_the_arm64_wheel_of_the_target_python(packages: Packages) -> None:
    build = packages.build("lambda-arm64", "lambda", "--arch", "arm64", "--python", "3.12").check()
    so = [n for n in build.names() if n.endswith(".so")]
    assert so == ["hiredis/hiredis.cpython-312-aarch64-linux-gnu.so"], so
    assert "Python 3.12, arm64" in build.stdout


def test_azure_zip_is_laid_out_for_the_functions_host(packages: Packages) -> None:
    names = set(local(packages, "azure").names())
    site = ".python_packages/lib/site-packages/"
    for expected in ("function_app.py", "host.json", "requirements.txt", "shop.py",
                     site + "faaspool/__init__.py", site + "redis/__init__.py",
                     site + "azure/functions/__init__.py"):  # fmt: skip
        assert expected in names, expected
    assert not any(n.startswith("faaspool/") or n.startswith("redis/") for n in names)


def test_gcf_zip_is_source_requirements_and_vendored_wheels(packages: Packages) -> None:
    build = local(packages, "gcf")
    names = build.names()
    assert {"main.py", "shop.py", "requirements.txt"} <= set(names)
    wheels = [n[len("vendor/") :] for n in names if n.startswith("vendor/") and n != "vendor/"]
    assert all(w.endswith(".whl") for w in wheels), wheels
    tag = LOCAL_PYTHON.replace(".", "")
    assert any(w.startswith("hiredis-") and f"-cp{tag}-" in w and "manylinux" in w for w in wheels)
    assert any(w.startswith("functions_framework-") for w in wheels)
    with zipfile.ZipFile(build.zip) as archive:
        requirements = archive.read("requirements.txt").decode().split()
    assert f"faaspool[hiredis]=={faaspool.__version__}" in requirements
    assert "functions-framework>=3,<4" in requirements


def test_the_faaspool_wheel_ships_the_starter_templates(packages: Packages, tmp_path: Path) -> None:
    """`pip install faaspool[cli]` users get `faaspool new`: the wheel built from this
    checkout (vendored in the GCF package) carries the templates, and its CLI writes a
    project from them with nothing else on the path."""
    build = local(packages, "gcf")
    site = tmp_path / "site"
    names: list[str] = []
    with zipfile.ZipFile(build.zip) as archive:
        for wheel_name in archive.namelist():
            if re.match(r"vendor/(faaspool|redis)-", wheel_name):
                with zipfile.ZipFile(io.BytesIO(archive.read(wheel_name))) as wheel:
                    wheel.extractall(site)
                    if wheel_name.startswith("vendor/faaspool-"):
                        names = wheel.namelist()
    for platform_name, marker in (("lambda", "app.py"), ("gcf", "main.py"), ("azure", "host.json")):
        assert f"faaspool/templates/{platform_name}/{marker}" in names, platform_name
    project = tmp_path / "made"
    report = run_isolated(
        [site],
        f"""
        from faaspool.cli import main
        code = main(["new", "lambda", {str(project)!r}, "--name", "demo"])
        print(json.dumps({{"code": code}}))
        """,
        {},
    )
    assert report == {"code": 0}
    assert (project / "template.yaml").is_file() and (project / "tests" / "test_app.py").is_file()


# -- the handlers run from the unpacked packages ---------------------------------------------


def test_the_lambda_package_runs_its_handler_in_isolation(
    packages: Packages, tmp_path: Path, redis_server: RedisServer
) -> None:
    root = unpack(local(packages, "lambda"), tmp_path / "task")
    report = run_isolated(
        [root],
        """
        import app, faaspool, redis.utils

        class Context:  # what awslambdaric's LambdaContext offers
            aws_request_id = "req-1"
            function_name = "shop"
            function_version = "$LATEST"
            invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:shop"
            memory_limit_in_mb = "256"
            log_group_name = "/aws/lambda/shop"
            log_stream_name = "stream"
            def get_remaining_time_in_millis(self):
                return 5000

        def http(method, path, body=None):
            return {"version": "2.0", "rawPath": path, "routeKey": "$default",
                    "requestContext": {"http": {"method": method, "path": path},
                                       "stage": "$default"},
                    "headers": {}, "body": json.dumps(body) if body else None,
                    "isBase64Encoded": False}

        lamp = {"name": "Lamp", "price_cents": 1999, "stock": 3}
        put = app.handler(http("PUT", "/products/lamp", lamp), Context())
        got = app.handler(http("GET", "/products/lamp"), Context())
        print(json.dumps({
            "put": put["statusCode"], "got": json.loads(got["body"]),
            "hiredis": redis.utils.HIREDIS_AVAILABLE,
            "faaspool": faaspool.__file__, "connects": faaspool.stats()["connects"],
        }))
        """,
        {"REDIS_URL": redis_server.url, "POWERTOOLS_TRACE_DISABLED": "true"},
    )
    assert report["put"] == 200
    assert report["got"] == {"sku": "lamp", "name": "Lamp", "price_cents": 1999, "stock": 3}
    assert report["hiredis"] is True
    assert report["faaspool"] == str(root / "faaspool" / "__init__.py")
    assert report["connects"] == 1


def test_the_azure_package_indexes_and_runs_in_isolation(
    packages: Packages, tmp_path: Path, redis_server: RedisServer
) -> None:
    root = unpack(local(packages, "azure"), tmp_path / "wwwroot")
    site = root / ".python_packages" / "lib" / "site-packages"
    report = run_isolated(
        [root, site],
        """
        import azure.functions as func
        import function_app, redis.utils

        functions = {f.get_function_name(): f.get_user_function()
                     for f in function_app.app.get_functions()}
        body = json.dumps({"name": "Lamp", "price_cents": 1999, "stock": 3}).encode()
        def request(method, data=b""):
            return func.HttpRequest(method=method, url="/api/products/lamp", body=data,
                                    route_params={"sku": "lamp"})
        put = functions["product"](req=request("PUT", body))
        got = functions["product"](req=request("GET"))
        print(json.dumps({"functions": sorted(functions), "put": put.status_code,
                          "got": json.loads(got.get_body()),
                          "hiredis": redis.utils.HIREDIS_AVAILABLE}))
        """,
        {"REDIS_URL": redis_server.url},
    )
    assert report["functions"] == ["fulfil", "order", "orders", "product"]
    assert report["put"] == 200 and report["got"]["stock"] == 3
    assert report["hiredis"] is True


def test_the_gcf_package_builds_offline_from_its_wheels_and_serves(
    packages: Packages, tmp_path: Path, redis_server: RedisServer
) -> None:
    root = unpack(local(packages, "gcf"), tmp_path / "workspace")
    # What the Python buildpack does with GOOGLE_VENDOR_PIP_DEPENDENCIES=vendor.
    site = tmp_path / "layers"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--find-links",
         str(root / "vendor"), "--requirement", str(root / "requirements.txt"),
         "--target", str(site), "--no-compile", "--disable-pip-version-check"],
        capture_output=True, text=True, timeout=RUN_TIMEOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("PIP_")},
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    report = run_isolated(
        [root, site],
        """
        import redis.utils
        from functions_framework import create_app

        client = create_app("api", "main.py").test_client()
        lamp = {"name": "Lamp", "price_cents": 1999, "stock": 3}
        put = client.put("/products/lamp", json=lamp)
        got = client.get("/products/lamp")
        print(json.dumps({"put": put.status_code, "got": got.get_json(),
                          "hiredis": redis.utils.HIREDIS_AVAILABLE}))
        """,
        {"REDIS_URL": redis_server.url},
    )
    assert report == {
        "put": 200,
        "got": {"sku": "lamp", "name": "Lamp", "price_cents": 1999, "stock": 3},
        "hiredis": True,
    }


def test_the_lambda_zip_is_accepted_by_create_function(
    packages: Packages, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto", reason="moto is not installed")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    data = local(packages, "lambda").zip.read_bytes()
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
             "Action": "sts:AssumeRole"}
        ],
    }  # fmt: skip
    with moto.mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        role = iam.create_role(RoleName="shop", AssumeRolePolicyDocument=json.dumps(trust))
        client = boto3.client("lambda", region_name="us-east-1")
        created = client.create_function(
            FunctionName="shop-api",
            Runtime=f"python{LOCAL_PYTHON}",
            Role=role["Role"]["Arn"],
            Handler="app.handler",
            Code={"ZipFile": data},
            Architectures=[LOCAL_ARCH or "x86_64"],
            Timeout=10,
            MemorySize=256,
            Environment={"Variables": {"REDIS_URL": "rediss://cache.example:6379/0"}},
        )
        fetched = client.get_function(FunctionName="shop-api")["Configuration"]
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert created["CodeSize"] == len(data) and created["CodeSha256"] == digest
    assert fetched["Handler"] == "app.handler" and fetched["CodeSha256"] == digest
    assert fetched["Environment"]["Variables"]["REDIS_URL"].startswith("rediss://")


# -- reproducible, bounded --------------------------------------------------------------------


def test_building_twice_gives_the_same_bytes(packages: Packages) -> None:
    first = local(packages, "lambda")
    again = packages.build(
        "lambda-again", "lambda", "--python", LOCAL_PYTHON, "--arch", LOCAL_ARCH or "x86_64"
    ).check()
    assert first.zip.name == again.zip.name == "lambda-lambda.zip"
    assert first.zip.read_bytes() == again.zip.read_bytes(), differing_entries(first, again)


def differing_entries(one: Build, other: Build) -> list[str]:
    with zipfile.ZipFile(one.zip) as a, zipfile.ZipFile(other.zip) as b:
        left = {i.filename: (i.CRC, i.date_time, i.external_attr) for i in a.infolist()}
        right = {i.filename: (i.CRC, i.date_time, i.external_attr) for i in b.infolist()}
    return sorted(n for n in left.keys() | right.keys() if left.get(n) != right.get(n))


def test_a_package_past_the_limit_fails_and_is_removed(packages: Packages) -> None:
    build = packages.build(
        "lambda-too-big", "lambda", "--python", LOCAL_PYTHON,
        "--max-zipped-mb", "0.5", "--max-unzipped-mb", "1",
    )  # fmt: skip
    assert build.returncode == 1
    assert "too large for AWS Lambda" in build.stderr
    assert re.search(r"zipped [\d.]+ MB > 0.5 MB; unzipped [\d.]+ MB > 1 MB", build.stderr)
    assert "50 MB zipped" in build.stderr  # names the platform's own limits
    assert not build.zip.exists()


def test_an_app_that_is_not_for_the_platform_is_refused(tmp_path: Path) -> None:
    gcf_app = str(REPO_ROOT / "examples" / "gcf")
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--platform", "azure", "--app", gcf_app,
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert run.returncode == 1 and "has no function_app.py" in run.stderr
    arm = subprocess.run(
        [sys.executable, str(SCRIPT), "--platform", "gcf", "--arch", "arm64",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert arm.returncode == 1 and "x86_64 only" in arm.stderr
    assert list(tmp_path.iterdir()) == []


# -- requirements --------------------------------------------------------------------------------


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    return tmp_path / f"faaspool-{faaspool.__version__}-py3-none-any.whl"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(textwrap.dedent(text))
    return path


def test_faaspool_is_replaced_by_the_checkouts_wheel(tmp_path: Path, wheel: Path) -> None:
    found = package_script.read_requirements(
        write(tmp_path, "# deps\nFaasPool[hiredis] >= 0.1  # ours\nflask\n"), wheel
    )
    assert found.install == [f"{wheel}[hiredis]", "flask"]
    assert f"faaspool[hiredis]=={faaspool.__version__}" in found.rewritten.splitlines()
    assert "# deps" in found.rewritten and "flask" in found.rewritten


def test_faaspool_is_added_when_not_listed(tmp_path: Path, wheel: Path) -> None:
    found = package_script.read_requirements(tmp_path / "absent.txt", wheel)
    assert found.install == [f"{wheel}[hiredis]"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("faaspool>=99\n", "excludes faaspool"),
        ("-r other.txt\n", "pip options"),
        ("not a requirement!\n", r"requirements\.txt:1"),
    ],
)
def test_requirements_it_cannot_honour_are_refused(
    tmp_path: Path, wheel: Path, text: str, message: str
) -> None:
    with pytest.raises(package_script.PackageError, match=message):
        package_script.read_requirements(write(tmp_path, text), wheel)


def test_the_zip_writer_ignores_file_times_and_build_order(tmp_path: Path) -> None:
    def tree(root: Path, stamp: int) -> list[str]:
        (root / "pkg").mkdir(parents=True)
        for name in ("b.py", "pkg/a.py", "run.sh"):
            (root / name).write_text(name)
            os.utime(root / name, (stamp, stamp))
        (root / "run.sh").chmod(0o775)
        return ["run.sh", "pkg/a.py", "b.py"]

    zips = []
    for n, (stamp, order) in enumerate([(1_000_000_000, 1), (1_700_000_000, -1)]):
        root = tmp_path / f"t{n}"
        files = tree(root, stamp)[::order]
        target = tmp_path / f"t{n}.zip"
        package_script.write_zip(target, root, files)
        zips.append(target.read_bytes())
    assert zips[0] == zips[1]


@pytest.fixture(autouse=True)
def _no_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    yield
