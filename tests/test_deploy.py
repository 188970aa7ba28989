"""The team deployment: docker-compose.yml, the Dockerfile, .env.example and the shipped sample.

CI builds the image and runs the README's compose sequence for real in ``.ci/docker/smoke.sh``
(run by ``.ci/run`` after these tests). Here, quickly and without a Docker engine: the compose
file's structure, ``docker-compose config`` when Debian's docker-compose is installed, that the
smoke script runs the README's commands and its base images are marked CI-only, and the command
the orchestrator container runs, with the compose file's environment, against the real
PostgreSQL test server.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from widgetal import Queue

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
SMOKE = ROOT / ".ci" / "docker" / "smoke.sh"
SAMPLE = ROOT / "widgetal" / "data" / "sample.csv"
_VAR = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, as `docker compose` resolves them."""

    def one(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op and op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op else ""

    return _VAR.sub(one, value)


def data_loading_steps() -> list[list[str]]:
    """The `docker compose run --rm orchestrator ...` lines documented in the compose file."""
    prefix = "docker compose run --rm orchestrator "
    steps = []
    for line in COMPOSE.read_text().splitlines():
        text = line.lstrip("# ").strip()
        if text.startswith(prefix):
            steps.append(shlex.split(text[len(prefix):].split("#")[0]))
    return steps


# -- the compose file's structure --------------------------------------------------------------


def test_compose_has_the_four_services_and_adminer_and_the_cluster_are_optional(compose):
    services = compose["services"]
    assert set(services) == {"db", "orchestrator", "labeller", "adminer", "dask-scheduler",
                             "dask-worker"}
    assert services["adminer"]["profiles"] == ["admin"]
    assert services["dask-scheduler"]["profiles"] == services["dask-worker"]["profiles"] == [
        "cluster"]
    assert all("profiles" not in services[s] for s in ("db", "orchestrator", "labeller"))
    assert services["adminer"]["ports"][0].startswith("127.0.0.1:")  # not open to the network


def test_cluster_profile_runs_dask_from_the_app_image_for_the_orchestrator(compose):
    services = compose["services"]
    scheduler, worker = services["dask-scheduler"], services["dask-worker"]
    for service in (scheduler, worker):  # the same image: workers unpickle widgetal's models
        assert (service["build"], service["image"]) == (".", compose["x-app"]["image"])
        assert "environment" not in service  # no database URL: texts in, scores out
    assert scheduler["command"][:2] == ["dask", "scheduler"]
    assert "ports" not in scheduler  # it runs what clients send: never published
    cmd = worker["command"]
    assert cmd[:3] == ["dask", "worker", "tcp://dask-scheduler:8786"]
    assert cmd[cmd.index("--nworkers") + 1] == "${WIDGETAL_DASK_WORKERS:-2}"
    assert worker["depends_on"] == ["dask-scheduler"]
    assert "hf-cache:/cache" in worker["volumes"]  # transformer weights, downloaded once
    assert not any("models" in v for v in worker["volumes"])
    # Off unless .env says so; the extra that gives the `dask` command is in the image.
    assert services["orchestrator"]["environment"]["WIDGETAL_DASK"] == "${WIDGETAL_DASK:-}"
    assert env_example()["WIDGETAL_DASK"] == ""
    extras = (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]")[1]
    assert re.search(r'(?m)^cluster = \[.*"distributed', extras)


def test_database_has_a_password_from_env_a_named_volume_and_a_healthcheck(compose):
    db = compose["services"]["db"]
    assert db["image"] == "postgres:15"
    env = db["environment"]
    assert env["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert "POSTGRES_HOST_AUTH_METHOD" not in env  # no trust auth
    volume, _, target = db["volumes"][0].partition(":")
    assert volume in compose["volumes"] and target == "/var/lib/postgresql/data"
    test = " ".join(db["healthcheck"]["test"])
    assert "pg_isready" in test and env["POSTGRES_USER"] in test


def test_orchestrator_runs_orchestrator_py_after_a_healthy_db_and_keeps_models(compose):
    orch = compose["services"]["orchestrator"]
    assert orch["command"][-1] == "orchestrator.py" and (ROOT / "orchestrator.py").exists()
    assert orch["depends_on"]["db"]["condition"] == "service_healthy"
    assert orch["restart"] == "on-failure"
    env = orch["environment"]
    assert "./models:" + env["WIDGETAL_MODELS_DIR"] in orch["volumes"]
    url = env["WIDGETAL_DB_URL"]
    assert "${POSTGRES_PASSWORD:?" in url and "@db:5432/" in url
    for name in ("INTERVAL_SECONDS", "MIN_NEW_LABELS", "FEATURIZER", "STRATEGY", "EXPLORE"):
        assert f"${{WIDGETAL_{name}:-" in env[f"WIDGETAL_{name}"]


def test_labeller_serves_the_app_on_its_published_port(compose):
    lab = compose["services"]["labeller"]
    cmd = lab["command"]
    assert cmd[:2] == ["widgetal", "serve"]
    assert cmd[cmd.index("--ip") + 1] == "0.0.0.0"
    port = cmd[cmd.index("--port") + 1]
    published = interpolate(lab["ports"][0], env_example())
    assert published.endswith(f":{port}")
    assert lab["depends_on"]["db"]["condition"] == "service_healthy"
    assert "@db:5432/" in lab["environment"]["WIDGETAL_DB_URL"]


def test_no_secret_in_the_repository_and_every_variable_is_documented(compose):
    text = COMPOSE.read_text()
    # Passwords only ever come from .env: no literal value, no user:password@ in a URL.
    assert not re.search(r"PASSWORD:\s+[^$\s]", text)
    assert not re.search(r"://[^:/\s]+:(?!\$\{)[^@\s]+@", text)
    example = env_example()
    assert example["POSTGRES_PASSWORD"] == ""  # the example holds no password to copy
    for name in {m.group(1) for m in _VAR.finditer(text)}:
        assert name in example, f"{name} is used in docker-compose.yml but not in .env.example"
    assert ".env" in (ROOT / ".dockerignore").read_text().split()
    tracked = subprocess.run(
        ["git", "ls-files", ".env"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    assert tracked.strip() == ""
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(compose["services"]["db"]["environment"]["POSTGRES_PASSWORD"], {})


def test_dockerfile_installs_cpu_torch_then_the_app_and_ships_the_orchestrator(compose):
    assert compose["x-app"]["build"] == "."
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines()]
    assert lines[[ln.startswith("FROM") for ln in lines].index(True)] == "FROM python:3.11-slim"
    runs = [ln for ln in lines if ln.startswith("RUN pip install")]
    assert runs[0] == (
        "RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
    )
    assert runs[1] == 'RUN pip install ".[postgres,transformers,app,cluster]"'
    assert "COPY orchestrator.py ./" in lines
    assert any(ln.startswith("USER ") and ln != "USER root" for ln in lines)


def _compose_cli() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def test_docker_compose_config_accepts_the_file(tmp_path):
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no docker-compose (apt install docker-compose) or docker compose plugin")
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES", "WIDGETAL"))}
    bad = subprocess.run([*cli, "config", "-q"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0 and "set POSTGRES_PASSWORD in .env" in bad.stderr + bad.stdout

    example = (ROOT / ".env.example").read_text()
    filled = re.sub(r"(?m)^POSTGRES_PASSWORD=$", "POSTGRES_PASSWORD=s3cret", example)
    (tmp_path / ".env").write_text(filled)
    ok = subprocess.run([*cli, "config"], cwd=tmp_path, env=env, capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    resolved = yaml.safe_load(ok.stdout)
    assert resolved["services"]["db"]["environment"]["POSTGRES_PASSWORD"] == "s3cret"
    orch_env = resolved["services"]["orchestrator"]["environment"]
    assert orch_env["WIDGETAL_DB_URL"] == "postgresql://widgetal:s3cret@db:5432/widgetal"
    assert orch_env["WIDGETAL_DASK"] == ""  # in-process unless .env switches the cluster on

    # The README's two .env lines for the cluster profile.
    with (tmp_path / ".env").open("a") as env_file:
        env_file.write("WIDGETAL_DASK=tcp://dask-scheduler:8786\nCOMPOSE_PROFILES=cluster\n")
    on = subprocess.run([*cli, "config"], cwd=tmp_path, env=env, capture_output=True,
                        text=True, timeout=60)
    assert on.returncode == 0, on.stderr
    resolved = yaml.safe_load(on.stdout)["services"]
    assert resolved["orchestrator"]["environment"]["WIDGETAL_DASK"] == "tcp://dask-scheduler:8786"
    assert resolved["dask-worker"]["command"][-2:] == ["--nworkers", "2"]


# -- the sample --------------------------------------------------------------------------------


def test_sample_is_small_and_regenerates_from_the_committed_script():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from make_sample import make_rows
    finally:
        sys.path.pop(0)
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    assert SAMPLE.stat().st_size < 100_000
    assert list(frame.columns) == ["id", "text", "label"]
    assert frame["id"].is_unique and frame["text"].is_unique
    assert frame["label"].value_counts().to_dict() == {"positive": 200, "negative": 200}
    assert frame.to_dict("records") == make_rows(len(frame))


# -- the orchestrator container's command, for real --------------------------------------------


def test_orchestrator_container_command_trains_a_model_on_postgresql(compose, postgres_url,
                                                                    tmp_path):
    orch = compose["services"]["orchestrator"]
    settings = {**env_example(), "POSTGRES_PASSWORD": "unused"}
    env = {k: interpolate(str(v), settings) for k, v in orch["environment"].items()}
    models = tmp_path / "models"
    models.mkdir()
    # The same variables, pointed at the test server and a temporary models folder.
    env.update(WIDGETAL_DB_URL=postgres_url, WIDGETAL_MODELS_DIR=str(models))
    run_env = {**os.environ, **env}

    # The documented data-loading step, with the image's working directory (the repo root).
    steps = data_loading_steps()
    assert [s[:2] for s in steps] == [["widgetal", "init"], ["widgetal", "import"]]
    for step in steps:
        done = subprocess.run([sys.executable, "-m", "widgetal.cli", *step[1:]], cwd=ROOT,
                              env=run_env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    q = Queue(postgres_url)
    assert q.progress().total == 400
    labelled_by_hand = pd.read_csv(SAMPLE, dtype=str).head(60)
    ids = q.find_external_ids(labelled_by_hand["id"].tolist())
    for ext, label in zip(labelled_by_hand["id"], labelled_by_hand["label"], strict=True):
        q.submit(ids[ext][0], label, "ana")

    command = [sys.executable if c == "python" else c for c in orch["command"]]
    proc = subprocess.Popen(command, cwd=ROOT, env=run_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while not list(models.glob("*.pkl")) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.5)
        pkl = list(models.glob("*.pkl"))
        assert pkl, "no model file within 180 s"
        time.sleep(1)  # let the cycle finish its reorder and run record
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
    assert proc.returncode == 0, output
    assert pkl[0].with_suffix(".json").exists()
    run = q.runs(limit=1)[0]
    assert run["status"] == "trained" and Path(run["model_file"]).name == pkl[0].name
    assert run["n_labels"] == 60 and run["n_reranked"] == 340
    q.engine.dispose()


# -- the real build and run in CI (.ci/docker/smoke.sh) ---------------------------------------


def readme_compose_commands() -> list[str]:
    """The shell lines of the README's "A labelling team: docker compose" block, comments cut."""
    section = (ROOT / "README.md").read_text().split("## A labelling team: docker compose")[1]
    block = section.split("```bash\n")[1].split("```")[0]
    return [ln.split("  #")[0].strip() for ln in block.splitlines() if ln.strip()]


def test_ci_runs_the_smoke_script_after_the_tests():
    run = (ROOT / ".ci" / "run").read_text()
    assert "bash .ci/docker/smoke.sh" in run
    assert run.index("bash .ci/docker/smoke.sh") > run.index("python -m pytest")


def test_smoke_script_runs_the_readmes_sequence_in_order():
    script = SMOKE.read_text()
    commands = readme_compose_commands()
    assert commands[0] == "cp .env.example .env" and "docker compose build" in commands
    position = 0
    for command in commands:
        if command.startswith("docker compose logs -f"):
            continue  # follows the log until Ctrl+C: the script reads the logs its own way
        # Debian's docker-compose 1.29 stands in for `docker compose`: the script's `dc` function.
        expected = re.sub(r"^docker compose ", "dc ", command)
        found = script.find(expected, position)
        assert found >= 0, f"smoke.sh does not run the README's `{command}` (after the step before)"
        position = found


def test_smoke_script_cleans_up_always_and_fails_loudly():
    script = SMOKE.read_text()
    assert script.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in script
    assert "trap cleanup EXIT" in script
    cleanup = script.split("cleanup() {")[1].split("\n}\n")[0]
    assert "down -v" in cleanup and 'kill "$DOCKERD_PID"' in cleanup and "logs" in cleanup
    # a copy of the tree under its own project name: never a real deployment's .env or volumes
    assert "export COMPOSE_PROJECT_NAME=widgetalsmoke" in script
    assert "--profile admin --profile cluster down -v" in cleanup  # every profile's services
    assert "WIDGETAL_INTERVAL_SECONDS=" in script  # from .env, so no minute-long wait


def test_smoke_script_switches_the_cluster_on_as_the_readme_says():
    section = (ROOT / "README.md").read_text().split("## A cluster: `orchestrate --dask`")[1]
    env_lines = re.findall(r"(?m)^(WIDGETAL_DASK|COMPOSE_PROFILES)=(\S+)", section)
    assert dict(env_lines) == {"WIDGETAL_DASK": "tcp://dask-scheduler:8786",
                               "COMPOSE_PROFILES": "cluster"}
    script = SMOKE.read_text()
    stage = script.split("the cluster profile")[1]
    assert 's|^WIDGETAL_DASK=.*|WIDGETAL_DASK=tcp://dask-scheduler:8786|" .env' in stage
    assert 'echo "COMPOSE_PROFILES=cluster" >>.env' in stage
    assert stage.index("dc up -d") < stage.index("predict_proba")


def test_base_image_stand_ins_are_ci_only_and_never_reach_users():
    for name in ("python", "postgres", "adminer"):
        dockerfile = (ROOT / ".ci" / "docker" / name / "Dockerfile").read_text()
        assert dockerfile.startswith("# CI ONLY"), name
    assert ".ci" in (ROOT / ".dockerignore").read_text().split()
    project = (ROOT / "Dockerfile").read_text()
    assert ".ci" not in project and "ca-certificates" not in project
    # The CA and the pip index live in the Python stand-in, not in the project's Dockerfile.
    assert "PIP_EXTRA_INDEX_URL" not in project and "PIP_CERT" not in project
