"""The `widgetal` command: each subcommand parses, calls one package function, and prints."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from .errors import WidgetalError
from .metrics import NAMES
from .queue import Queue
from .serve import DEFAULT_POOL

app = typer.Typer(
    help="Active-learning labelling: a SQL queue, a labelling app, and a retraining orchestrator.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

_FEATURIZER_HELP = ("tfidf-char (words + characters, the default), tfidf (words), or "
                    "transformer:NAME_OR_PATH.")
_METRIC_HELP = ("roc_auc, average_precision (of the rarer class with two classes, else the mean "
                "over classes), f1_macro or accuracy; multi-label: f1_micro, f1_macro, "
                "subset_accuracy or roc_auc.")

DbOption = typer.Option(
    None, "--db", help="Database URL (default: $WIDGETAL_DB_URL, else the widgetal.json project "
    "file here or in a parent folder, else sqlite:///widgetal.db)."
)
_MODELS_HELP = ("(default: $WIDGETAL_MODELS_DIR, else the project file's, else models)")


def db_url(db: str | None) -> str:
    """The database URL from --db, else $WIDGETAL_DB_URL, else the project file found here or
    above (widgetal.json), else the SQLite default."""
    from .projectfile import settings

    return settings(db).db_url if db is None else db


def models_folder(db: str | None, models_dir: Path | None) -> Path:
    """--models-dir, else $WIDGETAL_MODELS_DIR, else the project file's (same database)."""
    from .projectfile import settings

    return settings(db, models_dir).models_dir


def open_queue(db: str | None, **kwargs) -> Queue:
    return Queue(db_url(db), **kwargs)


@app.command()
def init(
    labels: str = typer.Option(..., help="Comma-separated label set, in order: negative,positive"),
    instructions: str | None = typer.Option(None, help="Instructions shown to labellers."),
    overlap: int | None = typer.Option(
        None, help="K: distinct labellers per item (default 1). Run init again to change it."
    ),
    on_disagreement: str | None = typer.Option(
        None, help="When an item's K labels disagree: review (wait for a reviewer; the "
        "default) or majority (a strict majority is final; otherwise review)."
    ),
    access: str | None = typer.Option(
        None, help="Who may label: open (a name in the link is enough; the default), keys (a "
        "personal secret link each: `widgetal labellers add`) or header (a sign-in proxy "
        "sends the name in a header). Run init again to change it."
    ),
    header_name: str | None = typer.Option(
        None, help="Header mode: the header carrying the signed-in name (X-Forwarded-User)."
    ),
    allow: str | None = typer.Option(
        None, help="Header mode: comma-separated names allowed to label (default: anyone the "
        "proxy signs in)."
    ),
    models_dir: Path | None = typer.Option(
        None, help="Models folder recorded in the project file (default: models beside it)."
    ),
    audit_share: float | None = typer.Option(
        None, help="Share of hand-outs drawn at random for the audit sample, whose labels score "
        "each model and never train it (0 turns it off; a new project: 0.05). Run init again "
        "to change it."
    ),
    multi_label: bool | None = typer.Option(
        None, "--multi-label/--single-label",
        help="An answer is a set of the labels (possibly empty: none of these) instead of one "
        "label. Fixed once the first label is given; default: single-label.",
    ),
    db: str | None = DbOption,
):
    """Create the database (if needed), store the label set and team settings, and write the
    widgetal.json project file beside it (so commands and notebooks in subfolders find it)."""
    from . import access as access_mod
    from .project import (
        DEFAULT_AUDIT_SHARE,
        check_audit_share,
        check_on_disagreement,
        check_overlap,
    )
    from .projectfile import write as write_project_file

    label_list = [x.strip() for x in labels.split(",")]
    if overlap is not None:  # checked before anything is created or stored
        check_overlap(overlap)
    if on_disagreement is not None:
        check_on_disagreement(on_disagreement)
    if audit_share is not None:
        check_audit_share(audit_share)
    policy = None
    if access is not None:
        policy = access_mod.check_policy(
            access, header_name, allow.split(",") if allow is not None else None)
    elif header_name is not None or allow is not None:
        raise typer.BadParameter("--header-name and --allow go with --access header.")
    url = db_url(db)
    q = open_queue(url, labels=label_list, instructions=instructions, multi_label=multi_label)
    if audit_share is None and q.setting("audit_share") is None and not q.count_label_events():
        audit_share = DEFAULT_AUDIT_SHARE  # a new project; an older one is changed on request
    q.configure(overlap=overlap, on_disagreement=on_disagreement, audit_share=audit_share)
    console.print(f"Audit sample: {q.audit_share:.0%} of hand-outs, drawn at random; their labels "
                  "score each model and never train it." if q.audit_share else
                  "Audit sample: off (`widgetal init --audit-share 0.05` turns it on).",
                  highlight=False)
    if policy is not None:
        access_mod.configure(q, policy)
    team = (f"; each item labelled by {q.overlap} labellers, disagreements: {q.on_disagreement}"
            if q.overlap > 1 else "")
    kind = " (multi-label: each answer is a set of them)" if q.multi_label else ""
    console.print(f"Project ready at {q.engine.url.render_as_string(hide_password=True)} "
                  f"with labels {q.labels}{kind}{team}.")
    console.print(_access_text(access_mod.policy(q)), highlight=False)
    # the environment already says where the database is (e.g. a container): no file then
    if db is not None or not os.environ.get("WIDGETAL_DB_URL"):
        written = write_project_file(url, models_dir)
        if written is not None:
            console.print(f"Project file: {written}", highlight=False)


def _access_text(policy) -> str:
    if policy.mode == "keys":
        return ("Access: keys. Each labeller opens a personal link: `widgetal labellers add NAME` "
                "prints it.")
    if policy.mode == "header":
        allowed = ", ".join(policy.allow) if policy.allow else "anyone the proxy signs in"
        return (f"Access: header. The sign-in proxy sends the name in {policy.header}; "
                f"allowed: {allowed}. `widgetal serve` passes the header to the app.")
    return "Access: open. A name in the link (?labeller=NAME) is enough."


labellers_app = typer.Typer(help="The people who label: add, list, disable, rotate.",
                            no_args_is_help=True)
app.add_typer(labellers_app, name="labellers")


@labellers_app.command("add")
def labellers_add(
    name: str = typer.Argument(..., help="The labeller's name."),
    reviewer: bool = typer.Option(False, "--reviewer", help="May also decide disagreements."),
    url: str = typer.Option(
        "http://127.0.0.1:8866/", envvar="WIDGETAL_APP_URL",
        help="The app's address as labellers reach it, for the printed link.",
    ),
    db: str | None = DbOption,
):
    """Register a labeller (or a reviewer) and print their personal link (keys access);
    adding a known name again changes the role and re-enables them, and keeps their key."""
    from . import access

    q = open_queue(db)
    person = q.add_person(name, reviewer=reviewer)
    console.print(f"{person.name} is a {person.role}.")
    if access.has_key(q, person.name):
        console.print(f"{person.name}'s personal link is unchanged (only its hash is stored); "
                      f"`widgetal labellers rotate {person.name}` makes a new one.",
                      highlight=False)
        return
    _print_link(q, person, access.rotate_key(q, person.name), url)


def _print_link(q: Queue, person, key: str, url: str) -> None:
    from . import access

    mode = access.policy(q).mode
    console.print(f"Personal link for {person.name} (shown once: keep it secret, send it only "
                  f"to them):", highlight=False)
    console.print(f"  {access.key_link(url, key)}", highlight=False, soft_wrap=True)
    if person.role == "reviewer":
        console.print(f"  {access.key_link(url, key, review=True)}   (review disagreements)",
                      highlight=False, soft_wrap=True)
    if mode != "keys":
        console.print(f"The project's access is {mode}: keys count once you run "
                      "`widgetal init --labels ... --access keys`.", highlight=False)


@labellers_app.command("rotate")
def labellers_rotate(
    name: str = typer.Argument(..., help="The labeller's name."),
    url: str = typer.Option(
        "http://127.0.0.1:8866/", envvar="WIDGETAL_APP_URL",
        help="The app's address as labellers reach it, for the printed link.",
    ),
    db: str | None = DbOption,
):
    """Give someone a new personal link; the old one stops working at once."""
    from . import access

    q = open_queue(db)
    key = access.rotate_key(q, name)
    person = next(p for p in q.people() if p.name == name.strip())
    console.print(f"{person.name}'s old link no longer works.")
    _print_link(q, person, key, url)


@labellers_app.command("list")
def labellers_list(db: str | None = DbOption):
    """Everyone registered, with role, state and label count."""
    from . import access

    q = open_queue(db)
    counts = q.progress().per_labeller
    console.print(_access_text(access.policy(q)), highlight=False)
    table = Table("name", "role", "active", "key", "labels", "since (UTC)")
    for p in q.people():
        table.add_row(p.name, p.role, "yes" if p.active else "no", "yes" if p.has_key else "no",
                      str(counts.get(p.name, 0)), f"{p.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


@labellers_app.command("disable")
def labellers_disable(
    name: str = typer.Argument(..., help="The labeller's name."), db: str | None = DbOption
):
    """Stop someone from reviewing and, in keys or header access, from labelling (their
    labels stay; `labellers add NAME` enables them again)."""
    person = open_queue(db).set_person_active(name, False)
    console.print(f"{person.name} is disabled.")


@app.command()
def agreement(
    min_shared: int = typer.Option(10, help="Items two labellers must share for their kappa."),
    db: str | None = DbOption,
):
    """How well labellers agree: pairwise Cohen's kappa, Krippendorff's alpha, per label."""
    report = open_queue(db).agreement(min_shared=min_shared)
    console.print(report.to_text(), highlight=False, markup=False)


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="CSV, TSV, JSONL or Parquet file."),
    text_col: str = typer.Option("text", help="Column holding the text."),
    id_col: str | None = typer.Option(
        None, help="Column with a unique id (else: external_id in a widgetal export, or a hash "
        "of the text)."
    ),
    label_col: str | None = typer.Option(
        None, help="Column with existing labels, if any (a widgetal export's 'label' is found)."
    ),
    labeller_col: str | None = typer.Option(
        None, help="Column naming who gave each label (default: a 'labeller' column if any)."
    ),
    encoding: str = typer.Option("utf-8", help="The file's text encoding, e.g. latin-1."),
    labeller: str = typer.Option(
        "import", help="Labeller recorded for labels whose row names none."
    ),
    on_conflict: str = typer.Option(
        "error", help="A row's label differs from the stored one: error (import nothing), keep "
        "(the stored label) or replace (the old one stays in the history, undone)."
    ),
    keep_stored_text: bool = typer.Option(
        False, "--keep-stored-text",
        help="Import even if some ids are stored with another text; keep the stored texts.",
    ),
    label_sep: str | None = typer.Option(
        None, "--label-sep",
        help="Multi-label projects: the character joining a cell's labels (billing|urgent). "
        'Without it a cell is a JSON list (["billing","urgent"]); [] is none of these either '
        "way, an empty cell not labelled yet. A widgetal export needs no option.",
    ),
    db: str | None = DbOption,
):
    """Add texts from a file; importing the same file again adds nothing twice."""
    q = open_queue(db)
    result = q.add(
        str(file), text=text_col, id=id_col, label=label_col, labeller=labeller,
        encoding=encoding, labeller_col=labeller_col, on_conflict=on_conflict,
        keep_stored_text=keep_stored_text, label_sep=label_sep,
    )
    console.print(result.summary(), highlight=False)
    for c in result.label_conflicts[:20]:
        console.print(f"  {c.external_id}: stored {c.old!r}, file {c.new!r}", highlight=False)


def _print_audit_curve(q: Queue) -> None:
    """The models' scores on the audit sample beside their CV scores, oldest run first."""
    from .audit import curve

    points = curve(q.runs(limit=200))
    if not points:
        return
    if not any(p["n_audit"] for p in points):
        console.print(f"Audit score: no audit labels yet (audit share {q.audit_share:.0%}).")
        return
    table = Table("run", "labels", f"CV {points[-1]['metric']}", "audit score (95% interval)",
                  "audit labels", title="Audit learning curve (CV on actively chosen labels is "
                  "biased; the audit sample is not)")
    for p in points[-10:]:
        cv = f"{p['cv']:.3f}" if p["cv"] is not None else "-"
        shown = (f"{p['audit']:.3f} [{p['ci_low']:.3f}, {p['ci_high']:.3f}]"
                 if p["audit"] is not None else "-")
        table.add_row(f"#{p['run']}", str(p["n_labels"]), cv, shown, str(p["n_audit"]))
    console.print(table)


@app.command()
def status(db: str | None = DbOption):
    """Counts, progress, and the latest model run."""
    q = open_queue(db)
    p = q.progress()
    kind = "   (multi-label: each answer is a set of these)" if q.multi_label else ""
    console.print(f"Labels: {q.labels or '(none: run widgetal init)'}{kind}")
    console.print(f"Items: {p.total}   labelled: {p.done}   left: {p.left}   ({p.fraction:.1%})")
    overlap = q.overlap
    if overlap > 1:
        console.print(f"Overlap: {overlap} labellers per item; disagreements: "
                      f"{q.on_disagreement}; awaiting review: {p.awaiting_review}")
        # who can fill the K slots: registered people, and anyone who labelled (open access)
        able = len({x.name for x in q.people() if x.active} | set(p.per_labeller))
        if able < overlap:
            console.print(f"[yellow]Warning:[/yellow] only {able} labellers known but each "
                          f"item needs {overlap}: items cannot finish until more people label.")
    if p.per_label:
        table = Table("label", "answers with it" if q.multi_label else "count")
        for name, n in p.per_label.items():
            table.add_row("[] (none of these)" if q.multi_label and name == "[]" else name,
                          str(n))
        console.print(table)
    if p.per_labeller:
        table = Table("labeller", "labels")
        for name, n in sorted(p.per_labeller.items(), key=lambda kv: -kv[1]):
            table.add_row(name, str(n))
        console.print(table)
    runs = q.runs(limit=1)
    if runs:
        r = runs[0]
        when = f"{r['started_at']:%Y-%m-%d %H:%M:%S} UTC"
        if r["status"] == "cold-start":  # no model yet; the queue was ordered for diversity
            cold = (r["metrics"] or {}).get("cold_start") or {}
            boosted = f", {cold['boosted']} boosted texts first" if cold.get("boosted") else ""
            console.print(
                f"Latest run #{r['id']} at {when}: no model yet ({r['reason']}); queue ordered "
                f"for diversity: one text per cluster of {cold.get('clusters', '?')}, the "
                f"smallest clusters first{boosted}. The first trained run takes over.")
        elif r["status"] == "running":
            console.print(f"Latest run #{r['id']} at {when}: running (or stopped before it "
                          "finished).")
        elif r["status"] != "trained":
            console.print(f"Latest run #{r['id']} at {when}: {r['status']}: {r['reason']}")
        else:
            m = r["metrics"] or {}
            scores = ", ".join(
                f"{NAMES[key]} {m[key]:.3f}"
                for key in _headline_first(r["model_file"])
                if isinstance(m.get(key), float) and m[key] == m[key]
            )
            left_out = m.get("awaiting_review") or 0
            console.print(
                f"Latest run #{r['id']} at {when}: {r['n_labels']} labels, CV {scores}; "
                f"model {r['model_file'] or '(none)'}"
                + (f"; {left_out} items left out, awaiting review" if left_out else "")
            )
    else:
        console.print("No orchestrator run yet.")
    _print_audit_curve(q)
    _print_stop_signal(q)
    from .coldstart import read_boost

    active = read_boost(q)
    if active:
        console.print(f"Boost: {active.describe()}", highlight=False)


def _headline_first(model_file: str | None) -> list[str]:
    """Score keys for a run line: the one the model is named by (``--metric``) first."""
    from .models import named_metric

    keys = ["accuracy", "f1_macro", "roc_auc", "average_precision", "f1_micro",
            "subset_accuracy"]
    named = named_metric(Path(model_file).name) if model_file else None
    return ([named] if named in keys else []) + [k for k in keys if k != named]


def _print_stop_signal(q: Queue) -> None:
    """Whether more labels are unlikely to help (widgetal.stopping), with its figures."""
    from .stopping import stop_signal

    runs = q.runs(limit=20)
    if any(r["status"] == "trained" for r in runs):
        console.print(f"Stop signal: {stop_signal(runs).line()}", highlight=False)


@app.command()
def boost(
    query: list[str] | None = typer.Argument(
        None, help='Keyword query: words, "quoted phrases", a trailing * for any ending, OR '
        'between alternatives (e.g. \'refund OR chargeback OR "money back"\').'),
    like: list[str] = typer.Option(
        [], "--like", help="An example text: the texts most like it come first (repeatable)."),
    top: int = typer.Option(20, help="With --like: how many of the most similar texts per "
                            "example are boosted."),
    clear: bool = typer.Option(False, "--clear", help="End every boost."),
    featurizer: str | None = typer.Option(
        None, help="Feature space for --like (default: the latest run's, else "
        "$WIDGETAL_FEATURIZER, else tfidf-char)."),
    db: str | None = DbOption,
):
    """Bring texts matching a keyword query, or like a few examples, to the front of the queue."""
    from . import coldstart
    from .features import DEFAULT_FEATURIZER

    q = open_queue(db)
    if clear:
        if query or like:
            raise typer.BadParameter("--clear takes no query and no --like.")
        ended = coldstart.clear_boost(q)
        console.print(f"Boost ended ({ended.describe()}); the next orchestrator run orders the "
                      "queue without it.", highlight=False)
        return
    if not query and not like:
        console.print(f"Boost: {coldstart.read_boost(q).describe()}", highlight=False)
        return
    runs = q.runs(limit=50)
    featurizer = (featurizer or next((r["featurizer"] for r in runs if r["featurizer"]), None)
                  or os.environ.get("WIDGETAL_FEATURIZER") or DEFAULT_FEATURIZER)
    active, moved = coldstart.add_boost(q, [" ".join(query)] if query else [], like, top=top,
                                        featurizer=featurizer)
    trained = any(r["status"] == "trained" for r in runs)
    console.print(
        f"Boost: {active.describe()}. {moved} texts moved to the front of the queue now. "
        + ("A model has trained: the next trained run orders the queue by uncertainty again."
           if trained else "Until a model trains, every orchestrator run keeps them first."),
        highlight=False)


@app.command()
def orchestrate(
    once: bool = typer.Option(False, "--once", help="Run one cycle and exit (for cron)."),
    interval_seconds: float = typer.Option(
        60, envvar="WIDGETAL_INTERVAL_SECONDS", help="Seconds between checks for new labels."
    ),
    min_new_labels: int = typer.Option(
        10, envvar="WIDGETAL_MIN_NEW_LABELS", help="Retrain once this many new labels arrived."
    ),
    models_dir: Path | None = typer.Option(
        None, envvar="WIDGETAL_MODELS_DIR", help=f"Where model files go {_MODELS_HELP}."
    ),
    featurizer: str = typer.Option(
        "tfidf-char", envvar="WIDGETAL_FEATURIZER", help=_FEATURIZER_HELP
    ),
    strategy: str = typer.Option(
        "entropy", envvar="WIDGETAL_STRATEGY",
        help="least-confidence, margin, entropy, random, committee or density.",
    ),
    explore: float = typer.Option(
        0.0, envvar="WIDGETAL_EXPLORE", help="Share of the queue's top given to random items."
    ),
    aggregate: str = typer.Option(
        "mean", envvar="WIDGETAL_AGGREGATE",
        help="Multi-label projects: a text's uncertainty is the mean or the max of its "
        "per-label uncertainties.",
    ),
    metric: str | None = typer.Option(
        None, envvar="WIDGETAL_METRIC", help=_METRIC_HELP + " Names the model files and heads "
        "status (default: f1_macro; multi-label: f1_micro).",
    ),
    keep: int | None = typer.Option(
        None, envvar="WIDGETAL_KEEP", help="Keep only the newest N models."
    ),
    pool_size: int = typer.Option(
        200_000, envvar="WIDGETAL_POOL_SIZE",
        help="Score a random subpool of this many unlabelled texts per cycle, plus the --top "
        "ones at the head of the queue; the rest keep their priority (0: score every text).",
    ),
    top: int = typer.Option(
        10_000, envvar="WIDGETAL_TOP", help="Texts at the head of the queue that a cycle with "
        "a subpool always re-scores.",
    ),
    wait_seconds: float | None = typer.Option(
        None, envvar="WIDGETAL_WAIT_SECONDS",
        help="Give up if the database is not up by then (default: forever; 120 with --once).",
    ),
    dask: str | None = typer.Option(
        None, "--dask", envvar="WIDGETAL_DASK",
        help="A Dask scheduler (tcp://HOST:8786) whose workers featurize and score the pool; "
        "default: in-process. Needs pip install 'widgetal[cluster]'.",
    ),
    log_level: str = typer.Option("INFO", envvar="WIDGETAL_LOG_LEVEL", help="DEBUG, INFO, ..."),
    db: str | None = DbOption,
):
    """Retrain on the labels, save a model, and order the queue by what it is least sure of."""
    import logging

    from .orchestrator import orchestrate as run_orchestrator

    if pool_size < 0 or top < 0:
        err.print(f"error: --pool-size and --top are counts of texts, 0 or more (got "
                  f"{pool_size} and {top}); --pool-size 0 scores every text.")
        raise typer.Exit(2)

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if wait_seconds is None and once:
        wait_seconds = 120
    run = run_orchestrator(
        db_url(db), once=once, interval_seconds=interval_seconds, min_new_labels=min_new_labels,
        models_dir=models_folder(db, models_dir), featurizer=featurizer, strategy=strategy,
        explore=explore, keep=keep, wait_seconds=wait_seconds, aggregate=aggregate,
        metric=metric, pool_size=pool_size or None, top=top,
        dask=dask,
    )
    if run is None and once:  # stopped by a signal before the cycle could run
        err.print("error: stopped before the database answered; no cycle ran.")
        raise typer.Exit(1)
    if run is not None:
        if run.status == "trained":
            scores = ", ".join(f"{NAMES[k]} {run.metrics[k]:.3f}"
                               for k in _headline_first(str(run.model_file))[:3]
                               if k in run.metrics)
            console.print(
                f"Run #{run.run_id}: {run.n_labels} labels, {scores}; saved {run.model_file}; "
                f"reordered {run.n_reranked} items"
                + (f" (a random subpool of {run.pool['window']} and the {run.pool['head']} at "
                   "the head of the queue; the others kept their priority)."
                   if run.pool.get("sampled") else ".")
            )
        else:
            console.print(f"Run #{run.run_id} {run.status}: {run.reason}")


@app.command()
def models(
    models_dir: Path | None = typer.Option(
        None, envvar="WIDGETAL_MODELS_DIR", help=f"The models folder {_MODELS_HELP}."
    ),
):
    """List saved models, oldest first: scores, label counts, featurizer, strategy."""
    from .models import list_models

    models_dir = models_folder(None, models_dir)
    frame = list_models(models_dir)
    if frame.empty:
        console.print(f"No models in {models_dir} yet: run `widgetal orchestrate --once`.")
        return
    table = Table("file", "created (UTC)", "labels", "named by", "accuracy", "macro-F1",
                  "ROC AUC", "avg precision", "featurizer", "strategy", "label counts")
    for r in frame.itertuples():
        counts = ", ".join(f"{k}: {v}" for k, v in (r.label_counts or {}).items())
        named = f"{NAMES.get(r.metric, r.metric)} {_cell(getattr(r, str(r.metric), None))}"
        table.add_row(
            r.file, f"{r.created_at:%Y-%m-%d %H:%M:%S}", _cell(r.n_labels), named,
            _cell(r.accuracy), _cell(r.f1_macro), _cell(r.roc_auc), _cell(r.average_precision),
            str(r.featurizer), str(r.strategy), counts,
        )
    console.print(table)


def _cell(value) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def orchestrate_main() -> None:
    """Entry point of the top-level ``orchestrator.py``: ``widgetal orchestrate`` renamed."""
    sys.argv = [sys.argv[0], "orchestrate", *sys.argv[1:]]
    main()


@app.command()
def export(
    file: Path = typer.Argument(..., help="Output .csv, .jsonl or .parquet."),
    events: bool = typer.Option(
        False, "--events", help="Every event (labels, undos, skips, reviews), not final labels."
    ),
    spreadsheet_safe: bool = typer.Option(
        False, "--spreadsheet-safe",
        help="CSV for a spreadsheet: prefix cells starting with = + - @ with ' so they are not "
        "run as formulas (changes those texts; leave it off for files you re-import).",
    ),
    db: str | None = DbOption,
):
    """Write each item's final label (with text, who gave it and when) to a file. In a
    multi-label project a CSV's label joins the set with | ([] for none of these) and a 0/1
    column label:NAME follows per label; JSONL and Parquet write lists."""
    from .io import write_labels

    q = open_queue(db)
    frame = q.events() if events else q.labelled()
    write_labels(frame, file, spreadsheet=spreadsheet_safe,
                 label_set=q.labels if q.multi_label else None)
    console.print(f"Wrote {len(frame)} {'events' if events else 'labels'} to {file}.")


@app.command("import-superintendent")
def import_superintendent_(
    url: str = typer.Argument(..., help="The superintendent 0.6 database's URL."),
    db: str | None = DbOption,
):
    """Copy a superintendent database's texts, labels and priorities in (twice adds nothing)."""
    from .superintendent import import_superintendent

    s = import_superintendent(url, open_queue(db))
    console.print(
        f"Read {s.rows} superintendent rows: added {s.added} texts ({s.already_present} were "
        f"already there), {s.labels_added} labels ({s.labels_already_present} already there), "
        f"priorities for {s.prioritised}. Label set: {s.label_set or '(none yet)'}."
    )


@app.command()
def serve(
    port: int = typer.Option(8866, help="Port to listen on."),
    ip: str = typer.Option(
        "127.0.0.1", help="Address to bind; 0.0.0.0 serves the network (put a proxy with "
        "authentication in front)."
    ),
    models_dir: Path | None = typer.Option(
        None, help=f"Models folder (for model guesses) {_MODELS_HELP}."
    ),
    cull_idle_seconds: int = typer.Option(
        900, help="Shut down a closed page's kernel after this many idle seconds."
    ),
    token: str | None = typer.Option(
        None, envvar="WIDGETAL_VOILA_TOKEN",
        help="Require Voila's token: the first visit needs ?token=TOKEN in the address.",
    ),
    max_kernels: int = typer.Option(
        0, envvar="WIDGETAL_MAX_KERNELS",
        help="Most pages open at once (each holds a kernel of ~80 MB); past it a page says "
        "the app is full. 0: no cap.",
    ),
    show_guess: bool | None = typer.Option(
        None, "--show-guess/--no-show-guess",
        help="Show the model's guess (default: $WIDGETAL_SHOW_GUESS=1, else off).",
    ),
    show_meta: bool | None = typer.Option(
        None, "--show-meta/--no-show-meta",
        help="Show each text's other columns (default: $WIDGETAL_SHOW_META=1, else off).",
    ),
    pool: int = typer.Option(
        DEFAULT_POOL, envvar="WIDGETAL_POOL",
        help="Kernels kept started ahead of pages, so a page need not wait for one (each idle "
        "one holds ~80 MB; not counted by --max-kernels). 0 (default): start each page's "
        "kernel on demand.",
    ),
    db: str | None = DbOption,
):
    """Serve the labelling app with Voila, to the people the project's access mode lets in."""
    from . import access
    from .errors import NotInitialised
    from .serve import serve as run_voila

    url = db_url(db)
    q = Queue(url)
    if not q.labels:  # fail here, with a clear message, not in every labeller's page
        where = q.engine.url.render_as_string(hide_password=True)
        raise NotInitialised(
            f"{where} has no label set yet: run `widgetal init --labels a,b` and "
            "`widgetal import FILE` first (with the same --db)."
        )
    policy = access.policy(q)
    q.engine.dispose()
    console.print(_serving_text(policy, f"http://{ip}:{port}/", token), highlight=False)
    code = run_voila(url, port=port, ip=ip, models_dir=models_folder(db, models_dir),
                     cull_idle_seconds=cull_idle_seconds, token=token, max_kernels=max_kernels,
                     header_envs=[policy.header] if policy.mode == "header" else [],
                     show_guess=show_guess, show_meta=show_meta, pool=pool)
    if code not in (0, -2, -15, 130, 143):
        raise typer.Exit(code)


def _serving_text(policy, base: str, token: str | None) -> str:
    suffix = f"&token={token}" if token else ""
    if policy.mode == "keys":
        where = (f"Serving the labelling app on {base} (keys access): each labeller opens the "
                 "personal link `widgetal labellers add NAME` printed")
        where += f", with &token={token} added." if token else "."
    elif policy.mode == "header":
        where = (f"Serving the labelling app on {base} (header access): only through the "
                 f"sign-in proxy, which sends the name in {policy.header}"
                 + (f"; first visit {base}?token={token}." if token else "."))
    else:
        where = f"Serving the labelling app on {base}?labeller=YOUR_NAME{suffix}"
    return where + " Ctrl+C stops it."


@app.command()
def quickstart(
    port: int = typer.Option(8866, envvar="WIDGETAL_PORT", help="Port for the labelling app."),
    models_dir: Path = typer.Option(
        Path("models"), envvar="WIDGETAL_MODELS_DIR", help="Where models are saved."
    ),
    sample: Path | None = typer.Option(
        None, help="A CSV with id,text[,label] columns (default: the bundled sample)."
    ),
    labels: str | None = typer.Option(
        None, help="Comma-separated label set, in order (needed when the sample has no label "
        "column; default: the sample's labels)."
    ),
    show_guess: bool | None = typer.Option(
        None, "--show-guess/--no-show-guess",
        help="Show the model's guess (default: $WIDGETAL_SHOW_GUESS=1, else off).",
    ),
    show_meta: bool | None = typer.Option(
        None, "--show-meta/--no-show-meta",
        help="Show each text's other columns (default: $WIDGETAL_SHOW_META=1, else off).",
    ),
    db: str | None = DbOption,
):
    """Import the sample, start the orchestrator and the labelling app (Ctrl+C stops both)."""
    from .quickstart import SAMPLE
    from .quickstart import quickstart as run_quickstart

    label_list = [x.strip() for x in labels.split(",")] if labels else None
    code = run_quickstart(db_url(db), models_dir=models_dir, port=port, sample=sample or SAMPLE,
                          labels=label_list, show_guess=show_guess, show_meta=show_meta)
    if code:
        raise typer.Exit(code)


@app.command()
def simulate(
    file: Path = typer.Argument(..., help="A labelled CSV, TSV, JSONL or Parquet file."),
    text_col: str = typer.Option("text", help="Column holding the text."),
    label_col: str = typer.Option("label", help="Column holding the known label."),
    strategies: str | None = typer.Option(
        None,
        help="Comma-separated strategies to compare; keep 'random' for the savings column "
        "(default: random, least-confidence, margin, entropy, committee (single-label only), "
        "density).",
    ),
    multi_label: bool = typer.Option(
        False, "--multi-label", help="Each row holds a set of labels (a JSON list, or joined "
        "by --label-sep)."
    ),
    label_sep: str | None = typer.Option(
        None, help="Multi-label: the separator between labels in a cell, e.g. '|'."
    ),
    labels: str | None = typer.Option(
        None, help="Multi-label: the label set in order, e.g. billing,urgent (default: the "
        "labels found, sorted)."
    ),
    aggregate: str = typer.Option(
        "mean", help="Multi-label: mean or max of the per-label uncertainties."
    ),
    metric: str | None = typer.Option(
        None, help=_METRIC_HELP + " The learning curves, target and savings use it (default: "
        "roc_auc for two classes, f1_macro for more, f1_micro multi-label).",
    ),
    batch: int = typer.Option(100, help="Labels added per round."),
    start: int = typer.Option(100, help="Size of the random seed set (holds every class)."),
    test_frac: float = typer.Option(0.1, help="Share held out for the test score."),
    featurizer: str = typer.Option("tfidf-char", help=_FEATURIZER_HELP),
    repeats: int = typer.Option(3, help="Repeats with different seed sets (mean and std)."),
    explore: float = typer.Option(0.0, help="Share of each batch drawn at random."),
    seed: int = typer.Option(123, help="Seeds the test split and the repeats."),
    max_labels: int | None = typer.Option(None, help="Stop curves at this many labels."),
    pool_size: int | None = typer.Option(
        None, help="Replay bounded cycles: each round scores a random subpool of this many "
        "unlabelled texts plus the --top at the head of the queue (default: all of them).",
    ),
    top: int | None = typer.Option(
        None, help="With --pool-size: texts at the head of the queue re-scored each round "
        "(default: --batch).",
    ),
    jobs: int = typer.Option(
        -1, help="Curves computed at once, in worker processes (-1: one per CPU; 1: none). "
        "The curves do not depend on it."),
    out: Path = typer.Option(Path("results"), help="Folder for curves.csv, summary.csv, PNG."),
    encoding: str = typer.Option("utf-8", help="The file's text encoding, e.g. latin-1."),
    columns: str | None = typer.Option(
        None, help="The file has no header; its column names, e.g. target,ids,date,flag,user,text."
    ),
    no_header: bool = typer.Option(
        False, "--no-header", help="The file has no header; columns are named 0, 1, 2, ..."
    ),
):
    """Replay a labelled file: how many labels does each strategy need, against random?"""
    from .simulate import load_labelled
    from .simulate import simulate as run_simulation

    names = [c.strip() for c in columns.split(",")] if columns else ([] if no_header else None)
    texts, answers = load_labelled(file, text_col, label_col, encoding=encoding, columns=names,
                                   multi_label=multi_label)
    chosen = None if strategies is None else [
        s.strip() for s in strategies.split(",") if s.strip()]
    label_set = None if labels is None else [x.strip() for x in labels.split(",") if x.strip()]
    result = run_simulation(
        texts, answers, strategies=chosen, featurizer=featurizer, batch=batch, start=start,
        test_frac=test_frac, repeats=repeats, explore=explore, seed=seed, max_labels=max_labels,
        multi_label=multi_label, label_set=label_set, label_sep=label_sep, aggregate=aggregate,
        metric=metric, pool_size=pool_size, top=top, n_jobs=jobs,
    )
    paths = result.save(out)
    summary = result.summary()
    metric = result.metric
    table = Table(
        "strategy", f"labels to {summary.attrs['target']:.3f}", "saving vs random",
        f"final {metric}", f"best {metric}",
        title=f"{metric} on {result.settings['n_test']} held-out rows; full-data score "
        f"{result.full_score:.3f} with {result.settings['n_pool']} labels; target = 99% of it",
    )
    for r in summary.itertuples():
        reached = "not reached" if r.labels_to_target != r.labels_to_target else (
            f"{r.labels_to_target:,.0f}")
        saving = "-" if r.saving_vs_random_pct != r.saving_vs_random_pct else (
            f"{r.saving_vs_random_pct:+.0f}%")
        table.add_row(r.strategy, reached, saving, f"{getattr(r, f'final_{metric}'):.3f}",
                      f"{getattr(r, f'best_{metric}'):.3f}")
    console.print(table)
    console.print(f"Wrote {paths['curves']}, {paths['summary']} and {paths['plot']}.")


@app.command()
def report(
    out: Path = typer.Option(Path("report.html"), help="The HTML file to write."),
    simulation: Path | None = typer.Option(
        None, help="A folder `widgetal simulate --out` wrote: its random and project-strategy "
        "curves are drawn beside the live audit curve."
    ),
    db: str | None = DbOption,
):
    """One self-contained HTML page: progress, runs, the audit learning curve, the stop signal."""
    from .report import write_report

    path = write_report(open_queue(db), out, simulation=simulation)
    console.print(f"Wrote {path}.")


def main() -> None:
    """Entry point: widgetal's own errors become one clear line and exit code 1."""
    try:
        app(standalone_mode=False)
    except WidgetalError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(1)
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(1)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:  # click's usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
