"""Agreement between labellers: pairwise kappa, Krippendorff's alpha, per label and per labeller.

Pure statistics over a table of labels: the queue supplies the table, the CLI (``widgetal
agreement``) and the models notebook show the report. The coefficients come from scikit-learn
(``cohen_kappa_score``) and the ``krippendorff`` package; this module only arranges the data for
them and says plainly when there is too little overlap for a figure to mean anything.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import krippendorff
import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import cohen_kappa_score

COLUMNS = ("item_id", "labeller", "label")
PAIR_COLUMNS = ["labeller_a", "labeller_b", "shared", "kappa", "percent_agreement", "note"]


@dataclass(frozen=True)
class AgreementReport:
    """What ``agreement`` found, as tables for a notebook and sentences for people.

    Attributes
    ----------
    pairs : DataFrame
        One row per pair of labellers sharing at least one item: ``labeller_a``, ``labeller_b``,
        ``shared``, ``kappa`` (Cohen's, NaN below ``min_shared`` or when undefined),
        ``percent_agreement`` (share of shared items labelled alike, 0-1) and ``note``.
    overall : dict
        ``alpha`` (Krippendorff's, nominal), ``items`` (items with two or more labels, the only
        ones alpha can use), ``labellers`` and ``note`` (None, or why alpha is NaN).
    per_label : DataFrame
        ``label``, ``n_labels``, ``specific_agreement``, ``alpha`` (one label against the rest),
        ``note``; one row per label in label-set order.
    per_labeller : DataFrame
        ``labeller``, ``n_labels``, one count column per label, ``n_with_final``,
        ``agreement_with_final``, ``kappa_with_final``, ``note``.
    notes : list of str
        Sentences on what could not be computed and why.
    pair_labels : DataFrame or None
        Multi-label projects only (see :mod:`widgetal.agreement_sets`): one row per pair of
        labellers and label, Cohen's kappa on "has this label or not". None for single-label.
    multi_label : bool
        Whether the labels were label sets; then ``pairs``, ``overall``, ``per_label`` and
        ``per_labeller`` measure sets as :func:`widgetal.agreement_sets.set_agreement` says.
    """

    pairs: pd.DataFrame
    overall: dict[str, Any]
    per_label: pd.DataFrame
    per_labeller: pd.DataFrame
    notes: list[str]
    pair_labels: pd.DataFrame | None = None
    multi_label: bool = False

    @property
    def alpha_name(self) -> str:
        """What ``overall["alpha"]`` is: nominal, or for label sets the mean over labels."""
        return ("Krippendorff's alpha (mean of the per-label alphas)" if self.multi_label
                else "Krippendorff's alpha (nominal)")

    def tables(self) -> list[tuple[str, pd.DataFrame]]:
        """The report's tables with a title each, in the order a reader wants them."""
        if not self.multi_label:
            return [("Pairs of labellers (Cohen's kappa)", self.pairs),
                    ("Per label", self.per_label), ("Per labeller", self.per_labeller)]
        return [("Pairs of labellers (whole label sets)", self.pairs),
                ("Pairs of labellers per label (Cohen's kappa on has / has not the label)",
                 self.pair_labels),
                ("Per label (has / has not the label)", self.per_label),
                ("Per labeller (whole label sets against the final ones)", self.per_labeller)]

    def to_text(self) -> str:
        """A plain-text report for a terminal: headline, the tables, then the notes."""
        o = self.overall
        n_labels = int(self.per_labeller["n_labels"].sum()) if len(self.per_labeller) else 0
        counted = "answers (label sets)" if self.multi_label else "labels"
        out = ["Agreement between labellers",
               f"  labellers: {o['labellers']}, {counted}: {n_labels}, "
               f"items with two or more labels: {o['items']}",
               f"  {_alpha_line(self.alpha_name, o['alpha'], o['note'])}"]
        if self.multi_label:
            out.append("  " + _alpha_line("Krippendorff's alpha over whole label sets (MASI "
                                          "distance)", o["masi_alpha"], o["masi_note"]))
        for title, table in self.tables():
            out += ["", title]
            if table.empty:
                out.append("  (none)")
                continue
            shown = table.astype(object).where(table.notna(), "")  # blank notes, not "None"
            for col in table.select_dtypes("float").columns:
                shown[col] = table[col].map(lambda v: "n/a" if pd.isna(v) else f"{v:.3f}")
            out.append(shown.to_string(index=False))
        if self.notes:
            out += ["", "Notes"] + [f"- {note}" for note in self.notes]
        return "\n".join(out)


def agreement(labels: pd.DataFrame, final: pd.Series | None = None,
              label_set: Sequence[str] | None = None, min_shared: int = 10,
              multi_label: bool = False) -> AgreementReport:
    """Measure how far labellers agree with each other and with the final labels.

    Kappa is chance-corrected, so a pair agreeing 90% of the time on a 90/10 label split does not
    look good by accident; alpha copes with any number of labellers and missing labels, so it is
    the one overall figure. Figures that rest on fewer than ``min_shared`` items are NaN with a
    note rather than a confident-looking number. Agreement with the final label is biased upwards
    where the final label was derived from the labeller's own vote (unanimity or majority).

    Parameters
    ----------
    labels : DataFrame
        One row per active label, columns ``item_id``, ``labeller``, ``label``.
    final : Series, optional
        Final label per item, indexed by ``item_id``; missing where there is none yet.
    label_set : sequence of str, optional
        The project's labels in order; default: the labels seen, sorted.
    min_shared : int, default 10
        Fewest shared items for a kappa, and fewest items with two or more labels for alpha.
    multi_label : bool, default False
        Labels (and ``final``) are label sets, stored as :mod:`widgetal.labelsets` strings;
        ``label_set`` is then required. See :func:`widgetal.agreement_sets.set_agreement`.

    Returns
    -------
    AgreementReport

    Raises
    ------
    ValueError
        Missing columns, a label outside ``label_set``, two labels from one labeller on one item,
        a duplicated item in ``final``, or ``min_shared < 1``.
    """
    if multi_label:
        # imported here: agreement_sets builds on this module's helpers
        from .agreement_sets import set_agreement

        return set_agreement(labels, final, label_set, min_shared)
    labels, final, label_set = _check(labels, final, label_set, min_shared)
    names = np.asarray(label_set, dtype=object)
    labellers, notes = _labellers_and_first_notes(labels)

    # Labels as codes into label_set: the statistics only need equal/unequal, and scikit-learn
    # looks integers up far faster than strings (seconds at a million labels).
    labels = labels.assign(code=_codes(labels["label"], label_set))
    # item x labeller matrix of codes (-1 = not labelled), the shape the pair loop wants
    wide = labels.pivot(index="item_id", columns="labeller", values="code").reindex(
        columns=labellers).fillna(-1).to_numpy(dtype=int)
    pairs = _pairs(wide, labellers, names, min_shared, notes)

    counts = _count(labels, "item_id", names).to_numpy()
    shared = counts[counts.sum(axis=1) >= 2]  # only items with two labels tell us anything
    alpha, alpha_note = _alpha(shared, min_shared)
    if alpha_note and len(labellers) > 1:
        notes.append(f"Too little overlap to compute Krippendorff's alpha: {alpha_note}."
                     if _too_little(alpha_note)
                     else f"Krippendorff's alpha is undefined: {alpha_note}.")
    overall = {"alpha": alpha, "items": len(shared), "labellers": len(labellers),
               "note": alpha_note}
    per_label = _per_label(counts, shared, shared.sum(axis=1), names, min_shared)
    per_labeller = _per_labeller(labels, final, labellers, names, min_shared, notes)
    return AgreementReport(pairs, overall, per_label, per_labeller, notes)


def _check(labels, final, label_set, min_shared):
    """Refuse what would give a wrong figure silently; return clean copies."""
    missing = [c for c in COLUMNS if c not in labels.columns]
    if missing:
        raise ValueError(f"labels needs the columns item_id, labeller and label; "
                         f"missing: {', '.join(missing)}")
    if min_shared < 1:
        raise ValueError(f"min_shared must be at least 1, not {min_shared}")
    labels = labels.loc[:, list(COLUMNS)].reset_index(drop=True)
    final = (pd.Series(dtype=object) if final is None else final).dropna()
    if final.index.duplicated().any():
        raise ValueError(f"final has more than one label for item(s) "
                         f"{list(final.index[final.index.duplicated()].unique()[:5])}")
    if label_set is None:
        label_set = sorted(set(labels["label"].dropna()) | set(final), key=str)
    label_set = list(label_set)
    if len(set(label_set)) != len(label_set):
        raise ValueError(f"label_set repeats a label: {label_set}")
    for what, values in (("labels", labels["label"]), ("final", final)):
        bad = values[~values.isin(label_set)]
        if len(bad):
            raise ValueError(f"{len(bad)} value(s) in {what} are not in the label set "
                             f"{label_set}: {sorted(set(bad.astype(str)))[:5]}")
    dup = labels.duplicated(["item_id", "labeller"], keep=False)
    if dup.any():
        row = labels[dup].iloc[0]
        raise ValueError(f"labeller {row['labeller']!r} has more than one active label on item "
                         f"{row['item_id']!r}; pass one row per active label")
    return labels, final, label_set


def _codes(values: pd.Series, label_set: list) -> np.ndarray:
    """Position of each label in the label set (all are in it: ``_check`` made sure)."""
    return pd.Categorical(values, categories=label_set).codes.astype(int)


def _count(labels: pd.DataFrame, by: str, label_set) -> pd.DataFrame:
    """How many labels of each kind per ``by`` value, columns in label-set order.

    A groupby on the codes, not ``pd.crosstab``, which counts group by group in Python.
    """
    sizes = labels.groupby([by, "code"]).size().unstack("code", fill_value=0)
    table = sizes.reindex(columns=range(len(label_set)), fill_value=0)
    return table.set_axis(list(label_set), axis=1)


def _pairs(wide, labellers, names, min_shared, notes) -> pd.DataFrame:
    """Cohen's kappa and raw agreement for every pair of labellers sharing an item."""
    rows, apart = [], 0
    for a, b in itertools.combinations(range(len(labellers)), 2):
        both = (wide[:, a] >= 0) & (wide[:, b] >= 0)
        if not both.any():
            apart += 1
            continue
        ya, yb = wide[both, a], wide[both, b]
        kappa, note = _kappa(ya, yb, names, min_shared, "shared item")
        rows.append((labellers[a], labellers[b], int(both.sum()), kappa, float(np.mean(ya == yb)),
                     note))
    pairs = pd.DataFrame(rows, columns=PAIR_COLUMNS).astype(
        {"shared": int, "kappa": float, "percent_agreement": float, "note": object})
    if apart and not rows:
        notes.append("No two labellers share an item: too little overlap to compute Cohen's "
                     "kappa.")
    elif apart:
        notes.append(f"{apart} pair(s) of labellers share no item and are not listed.")
    short = pairs["note"].str.contains(r"\(need", na=False)
    if short.any():
        notes.append(f"Too little overlap to compute Cohen's kappa for {short.sum()} of "
                     f"{len(pairs)} pair(s): fewer than {min_shared} shared items.")
    for r in pairs[pairs["note"].notna() & ~short].itertuples():
        notes.append(f"Cohen's kappa for {r.labeller_a} and {r.labeller_b} is undefined: {r.note}.")
    return pairs


def _kappa(y1, y2, names, min_shared, what) -> tuple[float, str | None]:
    """Cohen's kappa of two code arrays over all of ``names``, or NaN and the reason."""
    if len(y1) < min_shared:
        return np.nan, f"only {_n(len(y1), what)} (need {min_shared})"
    with warnings.catch_warnings():
        # Kappa is 0/0 when both sides gave one and the same label throughout (chance agreement is
        # 1). scikit-learn then warns (UndefinedMetricWarning, a RuntimeWarning before 1.6) and
        # returns NaN; the note below says why, so the warning would only repeat it per pair.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        kappa = float(cohen_kappa_score(y1, y2, labels=np.arange(len(names))))
    if np.isnan(kappa):
        return kappa, f"only {names[y1[0]]!r} on both sides (chance agreement is 1)"
    return kappa, None


def _alpha(counts: np.ndarray, min_shared: int) -> tuple[float, str | None]:
    """Nominal Krippendorff's alpha from an items x values count matrix, or NaN and the reason.

    ``counts`` holds only items with two or more labels.
    """
    note = _alpha_note(counts, min_shared)
    if note:
        return np.nan, note
    used = counts.sum(axis=0) > 0
    # unused values change nothing in nominal alpha; dropping them keeps a one-label set legal
    return float(krippendorff.alpha(value_counts=counts[:, used],
                                     level_of_measurement="nominal")), None


def _alpha_note(counts: np.ndarray, min_shared: int,
                same: str = "every label on shared items is the same") -> str | None:
    """Why alpha cannot be computed from ``counts`` (items x values), or None if it can."""
    if len(counts) == 0:
        return "no item has labels from two labellers"
    if len(counts) < min_shared:
        return f"only {_n(len(counts), 'item')} with two or more labels (need {min_shared})"
    if (counts.sum(axis=0) > 0).sum() < 2:
        return f"{same}, so there is nothing to compare"
    return None


def _alpha_line(name: str, alpha: float, note: str | None) -> str:
    """``name: 0.743``, or the figure's short name and why there is no value."""
    if note is None:
        return f"{name}: {alpha:.3f}"
    short = name.split(" (")[0]
    if _too_little(note):
        return f"{short}: too little overlap to compute it; {note}."
    if note.startswith("not computed"):
        return f"{short}: {note}."
    return f"{short}: undefined; {note}."


def _n(count: int, noun: str) -> str:
    """``1 shared item``, ``3 shared items``: notes are read by people."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun.replace('item', 'items')}"


def _too_little(note: str) -> bool:
    """Whether a note from ``_alpha`` or ``_kappa`` means too few items (not an undefined value)."""
    return "(need" in note or note.startswith("no item")


def _per_label(counts, shared, m, names, min_shared, sets: bool = False) -> pd.DataFrame:
    """Specific agreement and one-vs-rest alpha for each label.

    ``shared[i, k]`` is how many of the ``m[i]`` answers on shared item i hold label k (with
    single labels, ``m`` is the row sum; with label sets, ``sets=True``, it is not).
    Specific agreement for label k is the share of pairwise judgements involving k in which both
    raters chose k: ``sum_i n_ik (n_ik - 1) / sum_i n_ik (m_i - 1)`` over items with m_i >= 2
    labels (Uebersax 1982; for two raters, 2a / (2a + b + c)). It stays readable when kappa is
    dragged down by a rare label.
    """
    m = np.asarray(m).reshape(-1, 1)
    possible = (shared * (m - 1)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0: label unused on shared items
        specific = (shared * (shared - 1)).sum(axis=0) / possible
    rows = []
    for k, name in enumerate(names):
        alpha, note = _alpha(np.column_stack([shared[:, k], m[:, 0] - shared[:, k]]), min_shared)
        if note and not _too_little(note):  # alpha undefined: say which way
            note = ("never used on an item with two or more labels" if possible[k] == 0
                    else "in every answer on items with two or more labels" if sets
                    else "the only label used on items with two or more labels")
        rows.append((name, int(counts[:, k].sum()), specific[k], alpha, note))
    columns = ["label", "n_labels", "specific_agreement", "alpha", "note"]
    return pd.DataFrame(rows, columns=columns).astype({"specific_agreement": float,
                                                       "alpha": float})


def _per_labeller(labels, final, labellers, names, min_shared, notes) -> pd.DataFrame:
    """Each labeller's label counts and agreement with the final label."""
    table = _count(labels, "labeller", names).reindex(labellers)
    table.insert(0, "n_labels", table.sum(axis=1))
    withf = labels.assign(final=labels["item_id"].map(final)).dropna(subset=["final"])
    withf = withf.assign(final_code=_codes(withf["final"], list(names)))
    hits = (withf["label"] == withf["final"]).groupby(withf["labeller"])
    table["n_with_final"] = hits.size().reindex(labellers, fill_value=0)
    table["agreement_with_final"] = hits.mean().reindex(labellers)
    kappas = {name: _kappa(mine["code"].to_numpy(), mine["final_code"].to_numpy(), names,
                           min_shared, "item with a final label")
              for name, mine in withf.groupby("labeller")}
    table["kappa_with_final"] = [kappas.get(n, (np.nan,))[0] for n in labellers]
    table["note"] = pd.Series([kappas.get(n, (None, "no final labels on this labeller's items"))[1]
                               for n in labellers], index=table.index, dtype=object)
    if len(labels) and withf.empty:
        notes.append("No item has a final label yet: agreement with the final label not "
                     "computed.")
    short = table["note"].str.contains(r"\(need", na=False)
    if short.any() and not withf.empty:
        notes.append(f"Too little overlap to compute kappa with the final label for "
                     f"{short.sum()} labeller(s): fewer than {min_shared} items with a final "
                     "label.")
    undefined = table["note"].str.contains("chance agreement", na=False)
    if undefined.any():
        notes.append(f"Kappa with the final label is undefined for "
                     f"{', '.join(map(str, table.index[undefined.to_numpy()]))}: each gave "
                     "only the label "
                     "the final labels all have (chance agreement is 1).")
    table = table.astype({"agreement_with_final": float, "kappa_with_final": float})
    return table.rename_axis(index=None, columns=None).reset_index(names="labeller")


def _labellers_and_first_notes(labels):
    """The labellers, sorted, and what can be said before computing anything (no labels, or
    one labeller): shared by single-label and label-set agreement."""
    labellers = sorted(labels["labeller"].unique(), key=str)
    notes: list[str] = []
    if labels.empty:
        notes.append("No labels yet: nothing to compute.")
    elif len(labellers) == 1:
        notes.append(f"Only one labeller ({labellers[0]}): too little overlap to compute "
                     "Cohen's kappa or Krippendorff's alpha.")
    return labellers, notes
