"""``widgetal report``: one self-contained HTML page on whether active learning is helping.

The page shows the project's progress, every trained run (CV score, audit score with its
interval, stop-set kappa), the live audit learning curve, the stop signal with its figures
(:mod:`widgetal.stopping`) and, given the folder ``widgetal simulate --out`` wrote, what the
simulation predicts for random and for the project's strategy, drawn on the same axes as the
live audit curve. Everything is in the one file: inline CSS, figures as base64 PNG, no script
and no external asset, so it can be mailed or archived; every text from the project (labels,
errors, file names) is escaped.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import stopping
from .errors import InvalidInput

#: How the simulation and the orchestrator name the same metric.
_ALIASES = {"macro_f1": "f1_macro", "f1_macro": "f1_macro"}
_NAMES = {"f1_macro": "macro-F1", "f1_micro": "micro-F1", "roc_auc": "ROC AUC",
          "accuracy": "accuracy", "average_precision": "average precision",
          "subset_accuracy": "subset accuracy"}

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222;
       line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.8em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.verdict { padding: 0.7em 1em; border-radius: 4px; background: #f3f3f3; }
.stop { background: #e3f4e1; } .note { color: #666; font-size: 0.9em; }
img { max-width: 100%; }
"""


def write_report(queue: Any, out: str | Path = "report.html",
                 simulation: str | Path | None = None) -> Path:
    """Write the report for ``queue``'s project to ``out``; returns its path.

    Parameters
    ----------
    queue : Queue
    out : path
        The HTML file (its folder must exist).
    simulation : path, optional
        A folder written by ``widgetal simulate --out`` (``curves.csv``, ``summary.csv``).

    Raises
    ------
    InvalidInput
        ``simulation`` is not such a folder, or ``out``'s folder does not exist; nothing is
        written then.
    """
    out = Path(out)
    if not out.parent.is_dir():
        raise InvalidInput(f"Cannot write {out}: the folder {out.parent} does not exist.")
    sim = read_simulation(simulation) if simulation is not None else None
    page = render(queue, sim)
    out.write_text(page, encoding="utf-8")
    return out


def read_simulation(folder: str | Path) -> dict[str, Any]:
    """The curves and summary a ``widgetal simulate --out`` folder holds."""
    import pandas as pd

    folder = Path(folder)
    curves, summary = folder / "curves.csv", folder / "summary.csv"
    if not curves.is_file():
        raise InvalidInput(f"{folder} holds no curves.csv: pass the folder that "
                           "`widgetal simulate --out DIR` wrote.")
    frame = pd.read_csv(curves)
    if not {"strategy", "n_labels"} <= set(frame.columns):
        raise InvalidInput(f"{curves} is not a simulate curves file (it needs strategy and "
                           "n_labels columns).")
    if not any(c.endswith("_mean") for c in frame.columns):
        raise InvalidInput(f"{curves} holds no score columns (NAME_mean): not a simulate "
                           "curves file.")
    table = pd.read_csv(summary) if summary.is_file() else None
    headline = None
    if table is not None:
        headline = next((c[len("final_"):] for c in table.columns if c.startswith("final_")),
                        None)
    return {"folder": folder, "curves": frame, "summary": table, "metric": headline}


def render(queue: Any, sim: dict[str, Any] | None = None) -> str:
    """The report page as a string."""
    runs = queue.runs(limit=100_000)  # newest first
    trained = [r for r in runs if r.get("status") == "trained"]
    signal = stopping.stop_signal(runs)
    strategy = trained[0].get("strategy") if trained else None
    multi = bool(getattr(queue, "multi_label", False))
    cv_metric = "f1_micro" if multi else "f1_macro"

    parts = [f"<h1>widgetal report: is active learning helping?</h1>"
             f"<p class='note'>Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC for "
             f"<code>{_e(_project_name(queue))}</code>.</p>"]
    parts.append(_progress(queue))
    parts.append("<h2>Stop signal</h2>")
    parts.append(f"<p class='verdict{' stop' if signal.stop else ''}'>{_e(signal.line())}</p>")
    parts.append(
        "<p class='note'>Each run predicts a fixed random stop set of texts; Cohen's kappa "
        "between consecutive models' predictions there measures how much new labels still "
        f"change the model. The signal needs kappa &ge; {stopping.KAPPA_THRESHOLD} for the "
        f"last {stopping.WINDOW} runs (Bloodgood &amp; Vijay-Shanker 2009) and the audit score "
        f"no higher than the interval of the one {stopping.WINDOW} runs before.</p>")
    parts.append(_figure(_kappa_plot, trained))
    parts.append("<h2>Learning curve: audit score against labels</h2>")
    parts.append(
        "<p class='note'>The audit score is measured on texts served uniformly at random and "
        "kept out of training: an unbiased estimate. The CV score is cross-validated on the "
        "labels the model itself asked for, which are its hardest cases and not a sample of "
        "your data, so it can fall while the model improves.</p>")
    parts.append(_figure(_learning_plot, trained, cv_metric, sim, strategy))
    if sim is not None:
        parts.append(_simulation_section(sim, strategy))
    parts.append("<h2>Runs</h2>")
    parts.append(_runs_table(trained, cv_metric))
    skipped = len(runs) - len(trained)
    if skipped:
        parts.append(f"<p class='note'>{skipped} other runs trained no model (too few labels, "
                     "cold start, or an error; <code>widgetal status</code> shows the "
                     "latest).</p>")
    body = "\n".join(parts)
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<title>widgetal report</title>"
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


# -- sections --------------------------------------------------------------------------------


def _progress(queue: Any) -> str:
    p = queue.progress()
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{v}</td></tr>" for k, v in p.per_label.items())
    labels = ", ".join(_e(x) for x in queue.labels)
    return (f"<h2>Progress</h2><p>Labels: {labels}. <b>{p.done}</b> of <b>{p.total}</b> texts "
            f"labelled ({p.fraction:.1%}); <b>{p.left}</b> left.</p>"
            + (f"<table><tr><th>label</th><th>texts</th></tr>{rows}</table>" if rows else ""))


def _runs_table(trained: list[dict], cv_metric: str) -> str:
    if not trained:
        return "<p>No trained run yet: label a few texts of each class and run " \
               "<code>widgetal orchestrate --once</code>.</p>"
    head = ("<tr><th>run</th><th>finished (UTC)</th><th>labels</th>"
            f"<th>CV {_e(_NAMES.get(cv_metric, cv_metric))}</th><th>CV ROC AUC</th>"
            "<th>audit score [interval]</th><th>stop-set kappa</th><th>strategy</th></tr>")
    rows = []
    for r in trained:
        m = r.get("metrics") or {}
        audit = stopping.audit_of(r)
        when = r.get("finished_at") or r.get("started_at")
        rows.append(
            f"<tr><td>#{r['id']}</td><td>{_e(f'{when:%Y-%m-%d %H:%M}' if when else '')}</td>"
            f"<td>{_e(r.get('n_labels'))}</td><td>{_num(m.get(cv_metric))}</td>"
            f"<td>{_num(m.get('roc_auc'))}</td>"
            f"<td>{_e(stopping._interval(audit)) if audit else '–'}</td>"
            f"<td>{_num(m.get('stop_kappa'))}</td><td>{_e(r.get('strategy') or '')}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _simulation_section(sim: dict[str, Any], strategy: str | None) -> str:
    parts = [f"<h2>What <code>simulate</code> predicted</h2><p class='note'>From "
             f"<code>{_e(sim['folder'])}</code>: the same strategies replayed on a labelled "
             "file, dashed in the figure above; the live audit curve should follow the "
             "project strategy's line, and stay above random's.</p>"]
    shown = _sim_strategies(sim, strategy)
    if strategy and strategy not in shown:
        parts.append(f"<p class='note'>The simulation has no curve for this project's "
                     f"strategy ({_e(strategy)}).</p>")
    table = sim["summary"]
    if table is not None:
        cols = list(table.columns)
        head = "".join(f"<th>{_e(c)}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
            for row in table.itertuples(index=False))
        parts.append(f"<table><tr>{head}</tr>{body}</table>")
    return "\n".join(parts)


# -- figures ---------------------------------------------------------------------------------


def _figure(draw, *args) -> str:
    from matplotlib.figure import Figure  # no pyplot: no backend switch, no global state

    fig = Figure(figsize=(7, 3.8), dpi=100)
    ax = fig.subplots()
    caption = draw(ax, *args)
    if caption is None:
        return ""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f"<figure><img alt='{_e(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption class='note'>{_e(caption)}</figcaption></figure>")


def _kappa_plot(ax, trained: list[dict]) -> str | None:
    points = [(r.get("n_labels"), (r.get("metrics") or {}).get("stop_kappa"))
              for r in reversed(trained)]
    points = [(n, k) for n, k in points if n is not None and stopping._number(k) is not None]
    if not points:
        return None
    ax.plot(*zip(*points), marker="o", label="stop-set kappa vs previous run")
    ax.axhline(stopping.KAPPA_THRESHOLD, color="grey", ls=":", lw=1,
               label=f"threshold {stopping.KAPPA_THRESHOLD}")
    ax.set_xlabel("labels")
    ax.set_ylabel("Cohen's kappa")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return "Agreement of each model with the one before on the stop set."


def _learning_plot(ax, trained: list[dict], cv_metric: str, sim: dict | None,
                   strategy: str | None) -> str:
    runs = list(reversed(trained))
    audit = [(r.get("n_labels"), stopping.audit_of(r)) for r in runs]
    audit = [(n, a) for n, a in audit if n is not None and a is not None]
    audit_metric = next((stopping.audit_metric(r) for r in runs if stopping.audit_metric(r)),
                        None)
    said = []
    if audit:
        x = [n for n, _ in audit]
        y = [a[0] for _, a in audit]
        low = [a[0] - (a[1] if a[1] is not None else a[0]) for _, a in audit]
        high = [(a[2] if a[2] is not None else a[0]) - a[0] for _, a in audit]
        ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, color="C0",
                    label=f"audit {_NAMES.get(audit_metric, audit_metric or 'score')} (live)")
        said.append("audit score with its interval")
    else:
        said.append("no audit score yet (the audit sample is off or too small)")
    cv = [(r.get("n_labels"), stopping._number((r.get("metrics") or {}).get(cv_metric)))
          for r in runs]
    cv = [(n, v) for n, v in cv if n is not None and v is not None]
    if cv:
        ax.plot(*zip(*cv), marker=".", color="grey", lw=0.8,
                label=f"CV {_NAMES.get(cv_metric, cv_metric)} (biased)")
    if sim is not None:
        metric = _sim_metric(sim, audit_metric or cv_metric)
        for i, name in enumerate(_sim_strategies(sim, strategy)):
            curve = sim["curves"][sim["curves"]["strategy"] == name]
            mean = curve[f"{metric}_mean"].to_numpy(dtype=float)
            x = curve["n_labels"].to_numpy(dtype=float)
            color = "black" if name == "random" else f"C{i + 2}"
            ax.plot(x, mean, "--", color=color,
                    label=f"simulate: {name} ({_NAMES.get(_ALIASES.get(metric, metric), metric)})")
            if f"{metric}_std" in curve:
                std = curve[f"{metric}_std"].fillna(0).to_numpy(dtype=float)
                ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.1, lw=0)
        said.append(f"simulate's {metric} for " + " and ".join(_sim_strategies(sim, strategy)))
    ax.set_xlabel("labels")
    ax.set_ylabel("score")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower right")
    return "Score against labels: " + "; ".join(said) + "."


def plot_learning_curve(ax: Any, runs: list[dict], sim: dict[str, Any] | None = None,
                        multi_label: bool = False) -> str:
    """Draw the live audit curve (with intervals), the CV curve and, given ``sim`` (from
    :func:`read_simulation`), simulate's curves for random and the project's strategy on
    ``ax``; returns the caption. ``runs`` are ``Queue.runs()`` rows, newest first. The models
    notebook draws the same figure.
    """
    trained = [r for r in runs if r.get("status") == "trained"]
    strategy = trained[0].get("strategy") if trained else None
    return _learning_plot(ax, trained, "f1_micro" if multi_label else "f1_macro", sim, strategy)


def _sim_strategies(sim: dict, strategy: str | None) -> list[str]:
    present = list(dict.fromkeys(sim["curves"]["strategy"].astype(str)))
    return [s for s in ("random", strategy) if s and s in present]


def _sim_metric(sim: dict, wanted: str) -> str:
    """The simulation's column for the live curve's metric, else its headline metric."""
    columns = {c[: -len("_mean")] for c in sim["curves"].columns if c.endswith("_mean")}
    for name in columns:
        if _ALIASES.get(name, name) == _ALIASES.get(wanted, wanted):
            return name
    if sim["metric"] in columns:
        return sim["metric"]
    return sorted(columns)[0]


# -- small helpers ---------------------------------------------------------------------------


def _project_name(queue: Any) -> str:
    try:
        return queue.engine.url.render_as_string(hide_password=True)
    except AttributeError:
        return repr(queue)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any) -> str:
    number = stopping._number(value)
    return "–" if number is None else f"{number:.3f}"


def _cell(value: Any) -> str:
    number = stopping._number(value)
    return _e(value) if number is None else (f"{number:.4g}")


__all__ = ["write_report", "render", "read_simulation", "plot_learning_curve"]
