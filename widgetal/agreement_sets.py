"""Agreement in multi-label projects: per-label kappa and alpha, and MASI alpha over whole sets.

An answer is a set of labels (a :mod:`widgetal.labelsets` string). Each label is then a yes/no
question asked of every item, so per label there is Cohen's kappa for every pair of labellers
(scikit-learn) and Krippendorff's alpha over everyone (the ``krippendorff`` package), exactly as
for a two-label project. The overall figure is the mean of the per-label alphas: it is what a
one-vs-rest model trained per label relies on, and it costs what one binary alpha per label
costs at any size. Beside it, Krippendorff's alpha over whole sets with the MASI distance
(Passonneau 2006), which gives partial credit for overlapping sets; the package takes the
distance as a callable, but builds an items x sets x sets array, so that figure is left out
(with a note) where the distinct sets would make the array too large.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import krippendorff
import numpy as np
import pandas as pd

from . import labelsets
from .agreement import (
    COLUMNS,
    AgreementReport,
    _alpha_note,
    _kappa,
    _labellers_and_first_notes,
    _per_label,
    _too_little,
)
from .errors import WidgetalError

# The krippendorff package holds a few (rows x sets x sets) float arrays at once: above this many
# elements per array (~40 MB), the MASI alpha is not computed.
MASI_BUDGET = 5_000_000

PAIR_COLUMNS = ["labeller_a", "labeller_b", "shared", "percent_agreement", "mean_jaccard",
                "note"]
PAIR_LABEL_COLUMNS = ["labeller_a", "labeller_b", "label", "shared", "kappa",
                      "percent_agreement", "note"]


def set_agreement(labels: pd.DataFrame, final: pd.Series | None, label_set: Sequence[str] | None,
                  min_shared: int = 10) -> AgreementReport:
    """Measure agreement between labellers whose answers are label sets.

    - ``pairs``: per pair of labellers, ``percent_agreement`` (share of shared items given the
      very same set) and ``mean_jaccard`` (|A ∩ B| / |A ∪ B| averaged over shared items; two
      empty sets count 1).
    - ``pair_labels``: per pair and label, Cohen's kappa and raw agreement on "has this label".
    - ``overall["alpha"]``: the mean of the per-label alphas (labels whose alpha is undefined,
      used in every answer or in none, are left out and named in ``notes``);
      ``overall["masi_alpha"]``: Krippendorff's alpha over whole sets with the MASI distance,
      ``overall["masi_note"]`` why it is NaN (too little overlap, one set only, or more distinct
      sets x items than ``MASI_BUDGET`` allows).
    - ``per_label``: ``n_labels`` (answers holding the label), ``specific_agreement`` (positive
      agreement), ``kappa`` (mean of the pairs' kappas on this label where defined: Light's
      kappa, Light 1971) and ``alpha`` (binary nominal alpha over all labellers).
    - ``per_labeller``: answers, answers holding each label, and against the final set the
      exact-match rate (``agreement_with_final``) and ``jaccard_with_final``. There is no kappa
      with the final set: a set is not one category among a few.

    Kappas and alphas resting on fewer than ``min_shared`` items are NaN with a note, as in
    :func:`widgetal.agreement.agreement`; raw agreement and Jaccard are always shown with the
    number of items they rest on.

    Parameters
    ----------
    labels : DataFrame
        One row per active answer, columns ``item_id``, ``labeller``, ``label`` (a JSON array
        string such as ``'["billing","urgent"]'``; ``'[]'`` is the empty answer).
    final : Series or None
        Final set per item (the same strings), indexed by ``item_id``.
    label_set : sequence of str
        The project's labels in order.
    min_shared : int, default 10
        Fewest shared items for a kappa, and fewest items with two or more answers for alpha.

    Returns
    -------
    AgreementReport
        With ``multi_label=True`` and ``pair_labels`` set.

    Raises
    ------
    ValueError
        No ``label_set``, missing columns, a value that is not a label set over ``label_set``,
        two answers from one labeller on one item, a duplicated item in ``final``, or
        ``min_shared < 1``.
    """
    labels, final, label_set = _check(labels, final, label_set, min_shared)
    names = np.asarray(label_set, dtype=object)
    labellers, notes = _labellers_and_first_notes(labels)

    # The distinct sets are the values: codes into them, and per set its labels (0/1 row).
    domain = sorted(set(labels["label"]) | set(final))
    has = labelsets.indicator(domain, label_set).astype(int)  # sets x labels
    labels = labels.assign(code=pd.Categorical(labels["label"], categories=domain).codes)
    wide = labels.pivot(index="item_id", columns="labeller", values="code").reindex(
        columns=labellers).fillna(-1).to_numpy(dtype=int)
    jaccard, masi = _set_similarities(domain)
    pairs, pair_labels = _pairs(wide, labellers, jaccard, has, names, min_shared, notes)

    counts = (labels.groupby(["item_id", "code"]).size().unstack("code", fill_value=0)
              .reindex(columns=range(len(domain)), fill_value=0).to_numpy())  # items x sets
    shared = counts[counts.sum(axis=1) >= 2]
    # answers holding label k, per item: the set counts times the sets' 0/1 rows
    per_label = _per_label(counts @ has, shared @ has, shared.sum(axis=1), names, min_shared,
                           sets=True)
    light = pair_labels.groupby("label")["kappa"].mean()  # pandas skips NaN: defined pairs only
    per_label.insert(3, "kappa", per_label["label"].map(light).astype(float))
    alpha, alpha_note = _mean_alpha(shared, per_label, min_shared, notes)
    masi_alpha, masi_note = _masi_alpha(shared, 1 - masi, min_shared)
    if alpha_note and len(labellers) > 1:
        notes.append(f"Too little overlap to compute Krippendorff's alpha: {alpha_note}."
                     if _too_little(alpha_note)
                     else f"Krippendorff's alpha is undefined: {alpha_note}.")
    if masi_note and not _too_little(masi_note):
        notes.append(f"Krippendorff's alpha over whole label sets (MASI) is "
                     f"{'' if masi_note.startswith('not computed') else 'undefined: '}"
                     f"{masi_note}.")
    overall = {"alpha": alpha, "items": len(shared), "labellers": len(labellers),
               "note": alpha_note, "masi_alpha": masi_alpha, "masi_note": masi_note}
    per_labeller = _per_labeller(labels, final, labellers, domain, has, jaccard, names, notes)
    return AgreementReport(pairs, overall, per_label, per_labeller, notes,
                           pair_labels=pair_labels, multi_label=True)


def masi_distance(a: frozenset, b: frozenset) -> float:
    """1 − MASI: the distance between two label sets (Passonneau 2006).

    MASI = J × M, with J the Jaccard index |A ∩ B| / |A ∪ B| and M = 1 if A = B, 2/3 if one set
    holds the other, 1/3 if they overlap otherwise, 0 if they are disjoint. (NLTK's
    ``masi_distance`` rounds M to 0.67 and 0.33; this uses the fractions.)

    >>> masi_distance(frozenset("a"), frozenset("ab"))  # J = 1/2, M = 2/3: 1 - 1/3
    0.6666666666666667
    >>> masi_distance(frozenset(), frozenset()), masi_distance(frozenset(), frozenset("a"))
    (0.0, 1.0)
    """
    if a == b:
        return 0.0
    common = len(a & b)
    if common == 0:
        return 1.0
    monotonicity = 2 / 3 if a <= b or b <= a else 1 / 3
    return 1 - common / len(a | b) * monotonicity


def _mean_alpha(shared, per_label, min_shared, notes) -> tuple[float, str | None]:
    """The mean of the per-label alphas that are defined, or NaN and the reason."""
    note = _alpha_note(shared, min_shared)
    if note and _too_little(note):  # one set for everything: the per-label notes say why
        return np.nan, note
    alphas = per_label.set_index("label")["alpha"]
    if alphas.isna().all():
        return np.nan, ("each label is in every answer or in none on items with two or more "
                        "labels, so there is nothing to compare")
    if alphas.isna().any():
        left_out = ", ".join(repr(name) for name in alphas.index[alphas.isna()])
        notes.append(f"The mean of the per-label alphas leaves out {left_out} (alpha "
                     "undefined: in every answer or in none on items with two or more labels).")
    return float(alphas.mean()), None


def _masi_alpha(shared, distance, min_shared) -> tuple[float, str | None]:
    """Krippendorff's alpha over whole sets with the MASI distance, or NaN and the reason.

    ``shared`` is items x sets (answers per set, items with two or more answers). Items where
    everyone gave one set are merged into one row per set before the package sees them: such an
    item adds m coincidences of its set with itself whatever its m, so a merged row with the
    total count adds exactly what the items did. This keeps the package's array small where
    labellers mostly agree.
    """
    note = _alpha_note(shared, min_shared, same="every answer on shared items is the same "
                                                "label set")
    if note:
        return np.nan, note
    used = shared.sum(axis=0) > 0
    shared, distance = shared[:, used], distance[np.ix_(used, used)]
    unanimous = (shared > 0).sum(axis=1) == 1
    merged = shared[unanimous].sum(axis=0)
    rows = np.vstack([shared[~unanimous], np.diag(merged)[merged > 0]])
    if rows.size * rows.shape[1] > MASI_BUDGET:
        return np.nan, (f"not computed: {int((~unanimous).sum())} items with differing answers "
                        f"over {rows.shape[1]} distinct label sets are too many for the "
                        "krippendorff package's items x sets x sets array; see the per-label "
                        "alphas")
    return float(krippendorff.alpha(value_counts=rows,
                                     level_of_measurement=_matrix_metric(distance))), None


def _matrix_metric(distance: np.ndarray):
    """A ``krippendorff`` distance metric that looks values up in a precomputed matrix.

    The package calls it with the index arrays of the value domain (``i1``, ``i2``), which are
    the rows and columns of ``distance``.
    """
    def metric(v1, v2, i1, i2, n_v, dtype=np.float64):
        return distance[i1, i2].astype(dtype)
    return metric


def _check(labels, final, label_set, min_shared):
    """Refuse what would give a wrong figure silently; return copies with canonical strings."""
    missing = [c for c in COLUMNS if c not in labels.columns]
    if missing:
        raise ValueError(f"labels needs the columns item_id, labeller and label; "
                         f"missing: {', '.join(missing)}")
    if min_shared < 1:
        raise ValueError(f"min_shared must be at least 1, not {min_shared}")
    if not label_set:
        raise ValueError("label_set is needed for label sets: the project's labels in order")
    label_set = list(label_set)
    if len(set(label_set)) != len(label_set):
        raise ValueError(f"label_set repeats a label: {label_set}")
    labels = labels.loc[:, list(COLUMNS)].reset_index(drop=True)
    final = (pd.Series(dtype=object) if final is None else final).dropna()
    if final.index.duplicated().any():
        raise ValueError(f"final has more than one label set for item(s) "
                         f"{list(final.index[final.index.duplicated()].unique()[:5])}")
    labels["label"] = _canonical(labels["label"], label_set, "labels")
    final = _canonical(final, label_set, "final")
    dup = labels.duplicated(["item_id", "labeller"], keep=False)
    if dup.any():
        row = labels[dup].iloc[0]
        raise ValueError(f"labeller {row['labeller']!r} has more than one active label set on "
                         f"item {row['item_id']}; pass one row per active answer")
    return labels, final, label_set


def _canonical(values: pd.Series, label_set: list, what: str) -> pd.Series:
    """Each value as its canonical label-set string (equal sets, equal strings), or refuse."""
    canonical, bad = {}, []
    for value in values.unique():  # a few distinct sets, however many rows
        try:
            canonical[value] = labelsets.encode(labelsets.decode(value), label_set)
        except (ValueError, TypeError, WidgetalError):
            bad.append(value)
    if bad:
        count = int(values.isin(bad).sum())
        raise ValueError(f"{count} value(s) in {what} are not label sets over {label_set} "
                         f"(JSON lists such as '[\"{label_set[0]}\"]'): "
                         f"{sorted(map(str, bad))[:5]}")
    return values.map(canonical).astype(object)


def _set_similarities(domain: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Jaccard index and MASI between every two sets of ``domain`` (sets x sets each)."""
    sets = [frozenset(labelsets.decode(v)) for v in domain]
    jaccard = np.array([[len(a & b) / len(a | b) if a | b else 1.0 for b in sets] for a in sets])
    masi = np.array([[1 - masi_distance(a, b) for b in sets] for a in sets])
    return jaccard.reshape(len(sets), len(sets)), masi.reshape(len(sets), len(sets))


def _pairs(wide, labellers, jaccard, has, names, min_shared, notes):
    """Whole-set agreement per pair, and Cohen's kappa per pair and label."""
    rows, label_rows, apart = [], [], 0
    for a, b in itertools.combinations(range(len(labellers)), 2):
        both = (wide[:, a] >= 0) & (wide[:, b] >= 0)
        if not both.any():
            apart += 1
            continue
        sa, sb = wide[both, a], wide[both, b]
        pair = (labellers[a], labellers[b])
        rows.append((*pair, int(both.sum()), float(np.mean(sa == sb)),
                     float(jaccard[sa, sb].mean()), None))
        for k, name in enumerate(names):
            kappa, note = _label_kappa(has[sa, k], has[sb, k], name, min_shared)
            label_rows.append((*pair, name, int(both.sum()), kappa,
                               float(np.mean(has[sa, k] == has[sb, k])), note))
    pairs = pd.DataFrame(rows, columns=PAIR_COLUMNS).astype(
        {"shared": int, "percent_agreement": float, "mean_jaccard": float, "note": object})
    pair_labels = pd.DataFrame(label_rows, columns=PAIR_LABEL_COLUMNS).astype(
        {"shared": int, "kappa": float, "percent_agreement": float, "note": object})
    if apart and not rows:
        notes.append("No two labellers share an item: too little overlap to compute Cohen's "
                     "kappa.")
    elif apart:
        notes.append(f"{apart} pair(s) of labellers share no item and are not listed.")
    short = pairs["shared"] < min_shared
    if short.any():
        notes.append(f"Too little overlap to compute Cohen's kappa for {short.sum()} of "
                     f"{len(pairs)} pair(s): fewer than {min_shared} shared items.")
    undefined = pair_labels["note"].notna() & (pair_labels["shared"] >= min_shared)
    for r in pair_labels[undefined].itertuples():
        notes.append(f"Cohen's kappa on {r.label!r} for {r.labeller_a} and {r.labeller_b} is "
                     f"undefined: {r.note}.")
    return pairs, pair_labels


def _label_kappa(x, y, name, min_shared) -> tuple[float, str | None]:
    """Cohen's kappa on "has label ``name``" (0/1 arrays), or NaN and the reason."""
    kappa, note = _kappa(x, y, np.array(["no", "yes"]), min_shared, "shared item")
    if note and "chance agreement" in note:  # both always or both never chose it
        note = (f"both gave {name!r} on every shared item" if x[0] else
                f"neither gave {name!r} on a shared item") + " (chance agreement is 1)"
    return kappa, note


def _per_labeller(labels, final, labellers, domain, has, jaccard, names, notes) -> pd.DataFrame:
    """Each labeller's answers and how their sets compare with the final sets."""
    holding = pd.DataFrame(has[labels["code"]], columns=list(names), index=labels.index)
    table = holding.groupby(labels["labeller"]).sum().reindex(labellers, fill_value=0)
    table.insert(0, "n_labels", labels.groupby("labeller").size().reindex(labellers,
                                                                          fill_value=0))
    withf = labels.assign(final=labels["item_id"].map(final)).dropna(subset=["final"])
    final_code = pd.Categorical(withf["final"], categories=domain).codes
    by = withf["labeller"]
    table["n_with_final"] = by.value_counts().reindex(labellers, fill_value=0)
    table["agreement_with_final"] = (pd.Series(withf["code"].to_numpy() == final_code,
                                               index=withf.index).groupby(by).mean()
                                     .reindex(labellers))
    table["jaccard_with_final"] = (pd.Series(jaccard[withf["code"].to_numpy(), final_code],
                                             index=withf.index).groupby(by).mean()
                                   .reindex(labellers))
    table["note"] = pd.Series([None if n else "no final label sets on this labeller's items"
                               for n in table["n_with_final"]], index=table.index, dtype=object)
    if len(labels) and withf.empty:
        notes.append("No item has a final label set yet: agreement with the final label sets "
                     "not computed.")
    table = table.astype({"agreement_with_final": float, "jaccard_with_final": float})
    return table.rename_axis(index=None, columns=None).reset_index(names="labeller")
