"""Where the project is: a small ``widgetal.json`` beside the database, found from any subfolder.

``widgetal init`` and ``widgetal quickstart`` write it; the CLI and the notebooks look for it in
the current folder and its parents (like git looks for ``.git``). Precedence for the database:
``--db`` > ``$WIDGETAL_DB_URL`` > the project file > ``sqlite:///widgetal.db``; for the models
folder: ``--models-dir`` > ``$WIDGETAL_MODELS_DIR`` > the project file (when it names the same
database) > ``models``. Relative paths in the file are relative to the file's folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from .errors import NotInitialised

FILENAME = "widgetal.json"
DEFAULT_URL = "sqlite:///widgetal.db"
_SQLITE = "sqlite:///"


class NoProject(NotInitialised):
    """A notebook found neither ``$WIDGETAL_DB_URL`` nor a project file."""


@dataclass(frozen=True)
class Settings:
    """The database and models folder to use, and where they came from."""

    db_url: str
    models_dir: Path
    project_file: Path | None  # the file the settings came from, if any


def find(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest ``widgetal.json`` in ``start`` (default: the current folder) or its parents."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / FILENAME
        if candidate.is_file():
            return candidate
    return None


def read(path: str | os.PathLike) -> Settings:
    """The settings in one project file, with relative paths made absolute."""
    path = Path(path).resolve()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        url = data["db_url"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NotInitialised(f"{path} is not a readable widgetal project file ({exc}); "
                             "run `widgetal init` again to rewrite it.") from exc
    models = Path(data.get("models_dir") or "models")
    return Settings(_absolute(url, path.parent), path.parent / models, path)


def settings(db: str | None = None, models_dir: str | os.PathLike | None = None,
             start: str | os.PathLike | None = None) -> Settings:
    """The database URL and models folder for a command run in ``start`` (see module doc)."""
    found = find(start)
    from_file = read(found) if found else None
    url = db or os.environ.get("WIDGETAL_DB_URL")
    if url is None:
        url = from_file.db_url if from_file else DEFAULT_URL
    same = from_file is not None and _same_db(from_file.db_url, url)
    models = (models_dir or os.environ.get("WIDGETAL_MODELS_DIR")
              or (from_file.models_dir if same else None) or "models")
    return Settings(url, Path(models), from_file.project_file if same else None)


def notebook_settings(start: str | os.PathLike | None = None) -> Settings:
    """Settings for a notebook: the environment or a project file, never a silent new database.

    Raises
    ------
    NoProject
        Neither ``$WIDGETAL_DB_URL`` nor a ``widgetal.json`` here or above.
    """
    if not os.environ.get("WIDGETAL_DB_URL") and find(start) is None:
        here = Path(start or Path.cwd()).resolve()
        raise NoProject(
            f"No widgetal project found: there is no {FILENAME} in {here} or its parents, and "
            "WIDGETAL_DB_URL is not set. Run `widgetal init` (or `widgetal quickstart`) in the "
            "project folder, open this notebook from inside that folder, or set "
            "WIDGETAL_DB_URL. Nothing was created."
        )
    return settings(start=start)


def write(db_url: str, models_dir: str | os.PathLike | None = None,
          cwd: str | os.PathLike | None = None) -> Path | None:
    """Write the project file beside the database; returns its path, or None when there is
    nothing to write (an in-memory database).

    A SQLite file's project file goes into the database's folder; any other database's into
    ``cwd``. A URL with a password makes the file readable by its owner only.
    """
    cwd = Path(cwd or Path.cwd()).resolve()
    parsed = sa.engine.make_url(db_url)
    if parsed.drivername.startswith("sqlite"):
        database = parsed.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        db_path = (cwd / database).resolve()
        folder = db_path.parent
        stored_url = parsed.set(database=db_path.name).render_as_string(hide_password=False)
    else:
        folder = cwd
        stored_url = db_url
    target = folder / FILENAME
    previous = read(target) if target.is_file() else None
    if models_dir is not None:
        models = Path(models_dir)
        models = models if models.is_absolute() else (cwd / models)
    elif previous is not None:
        models = previous.models_dir
    else:
        models = folder / "models"
    try:
        models_text = str(models.resolve().relative_to(folder))
    except ValueError:
        models_text = str(models.resolve())
    content = {
        "about": "widgetal project file, written by `widgetal init`: the CLI and notebooks in "
                 "this folder and below use this database and models folder.",
        "db_url": stored_url,
        "models_dir": models_text,
    }
    tmp = target.with_name(f".{FILENAME}.tmp")
    tmp.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    if parsed.password:
        tmp.chmod(0o600)
    os.replace(tmp, target)
    return target


def _absolute(url: str, folder: Path) -> str:
    """A relative SQLite path in the file is relative to the file's folder."""
    if not url.startswith(_SQLITE):
        return url
    path, sep, query = url[len(_SQLITE):].partition("?")
    if not path or path == ":memory:" or os.path.isabs(path):
        return url
    return _SQLITE + str((folder / path).resolve()) + sep + query


def _same_db(a: str, b: str) -> bool:
    return _absolute(a, Path.cwd()) == _absolute(b, Path.cwd())


__all__ = ["FILENAME", "NoProject", "Settings", "find", "read", "settings",
           "notebook_settings", "write"]
