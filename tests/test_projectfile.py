"""The project file: written beside the database, found from subfolders, by the CLI and the
notebooks; a notebook without a project says so and creates nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from widgetal import Queue, projectfile
from widgetal.serve import MODELS_NOTEBOOK


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("WIDGETAL_DB_URL", raising=False)
    monkeypatch.delenv("WIDGETAL_MODELS_DIR", raising=False)


def _cli(*args, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("WIDGETAL_DB_URL", "WIDGETAL_MODELS_DIR")}
    return subprocess.run([sys.executable, "-m", "widgetal.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_write_puts_the_file_beside_a_sqlite_database_with_relative_paths(tmp_path):
    (tmp_path / "data").mkdir()
    path = projectfile.write("sqlite:///data/labels.db", cwd=tmp_path)
    assert path == tmp_path / "data" / projectfile.FILENAME
    stored = json.loads(path.read_text())
    assert stored["db_url"] == "sqlite:///labels.db" and stored["models_dir"] == "models"
    found = projectfile.read(path)
    assert found.db_url == f"sqlite:///{tmp_path / 'data' / 'labels.db'}"
    assert found.models_dir == tmp_path / "data" / "models"
    # init again without --models-dir keeps the folder; with one, records it
    projectfile.write("sqlite:///labels.db", tmp_path / "elsewhere", cwd=tmp_path / "data")
    assert projectfile.read(path).models_dir == tmp_path / "elsewhere"
    projectfile.write("sqlite:///labels.db", cwd=tmp_path / "data")
    assert projectfile.read(path).models_dir == tmp_path / "elsewhere"
    assert projectfile.write("sqlite://", cwd=tmp_path) is None  # in memory: nothing to find


def test_a_server_url_with_a_password_is_readable_by_its_owner_only(tmp_path):
    url = "postgresql://u:secret@db:5432/labels"
    path = projectfile.write(url, cwd=tmp_path)
    assert path == tmp_path / projectfile.FILENAME
    assert projectfile.read(path).db_url == url
    assert path.stat().st_mode & 0o077 == 0


def test_settings_precedence(tmp_path, monkeypatch):
    projectfile.write("sqlite:///p.db", "m", cwd=tmp_path)
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    found = projectfile.settings(start=sub)
    assert found.db_url == f"sqlite:///{tmp_path / 'p.db'}"
    assert found.models_dir == tmp_path / "m"
    assert found.project_file == tmp_path / projectfile.FILENAME
    other = projectfile.settings("sqlite:////x/other.db", start=sub)
    assert other.db_url == "sqlite:////x/other.db" and other.models_dir == Path("models")
    assert projectfile.settings(models_dir="mine", start=sub).models_dir == Path("mine")
    monkeypatch.setenv("WIDGETAL_DB_URL", "sqlite:////env.db")
    assert projectfile.settings(start=sub).db_url == "sqlite:////env.db"


def test_notebook_settings_refuse_without_a_project(tmp_path):
    with pytest.raises(projectfile.NoProject, match="No widgetal project found"):
        projectfile.notebook_settings(start=tmp_path)


def test_cli_from_a_subfolder_uses_the_project(tmp_path):
    out = _cli("init", "--labels", "negative,positive", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "widgetal.db").exists() and (tmp_path / "widgetal.json").exists()
    assert "Project file:" in out.stdout
    sub = tmp_path / "notebooks" / "deeper"
    sub.mkdir(parents=True)
    (tmp_path / "texts.csv").write_text("text\nfirst\nsecond\n")
    out = _cli("import", "../../texts.csv", cwd=sub)
    assert out.returncode == 0, out.stderr
    status = _cli("status", cwd=sub)
    assert "Items: 2" in status.stdout, status.stdout + status.stderr
    assert not list(sub.glob("*.db")) and not list((tmp_path / "notebooks").glob("*.db"))
    models = _cli("models", cwd=sub)
    assert str(tmp_path / "models") in models.stdout.replace("\n", "")


def _run_models_notebook(folder: Path) -> nbformat.NotebookNode:
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(MODELS_NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}},
                                     allow_errors=True)
    client.execute()
    return nb


@pytest.mark.timeout(300)
def test_models_notebook_run_from_notebooks_finds_the_project(tmp_path):
    q = Queue(f"sqlite:///{tmp_path / 'widgetal.db'}", labels=["negative", "positive"])
    q.add(["one text", "another"])
    q.engine.dispose()
    projectfile.write("sqlite:///widgetal.db", cwd=tmp_path)
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    shutil.copy(MODELS_NOTEBOOK, notebooks)
    nb = _run_models_notebook(notebooks)
    text = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert "No model yet" in text and str(tmp_path / "widgetal.db") in text
    assert "of **2** texts labelled" in text
    assert not (notebooks / "widgetal.db").exists()


@pytest.mark.timeout(300)
def test_models_notebook_without_a_project_says_so_and_creates_nothing(tmp_path):
    nb = _run_models_notebook(tmp_path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.output_type == "error"]
    assert errors and errors[0].ename == "NoProject"
    assert "No widgetal project found" in errors[0].evalue
    assert not list(tmp_path.glob("*.db"))
