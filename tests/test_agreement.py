"""Agreement: textbook values for kappa and alpha, clear notes when overlap is too thin."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from widgetal.agreement import AgreementReport, agreement


def table(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["item_id", "labeller", "label"])


def two_raters(cells: dict[tuple[str, str], int]) -> pd.DataFrame:
    """Labels of ann and bob from a 2x2 contingency table {(ann's label, bob's label): count}."""
    pairs = np.repeat(list(cells), list(cells.values()), axis=0)
    items = [f"i{n}" for n in range(len(pairs))]
    return table([*zip(items, ["ann"] * len(items), pairs[:, 0]),
                  *zip(items, ["bob"] * len(items), pairs[:, 1])])


# Wikipedia's Cohen's kappa example: 50 items; both yes 20, ann yes/bob no 5, ann no/bob yes 10,
# both no 15.
WIKI = two_raters({("yes", "yes"): 20, ("yes", "no"): 5, ("no", "yes"): 10, ("no", "no"): 15})

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: nominal data,
# four observers, twelve units, missing values (None). Published alpha = 0.743.
KRIPPENDORFF = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}
K_LABELS = ["1", "2", "3", "4", "5"]


def krippendorff_table() -> pd.DataFrame:
    wide = pd.DataFrame(KRIPPENDORFF, index=[f"u{n}" for n in range(1, 13)])
    long = wide.rename_axis("item_id").reset_index().melt(
        "item_id", var_name="labeller", value_name="label").dropna()
    return long.assign(label=long["label"].astype(int).astype(str))


def test_kappa_alpha_and_specific_agreement_match_the_textbook_two_rater_example():
    report = agreement(WIKI, label_set=["yes", "no"])
    pair = report.pairs.iloc[0]
    # p_o = (20 + 15) / 50 = 0.7; ann says yes 25/50, bob 30/50, so
    # p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5 and kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
    assert (pair.labeller_a, pair.labeller_b, pair.shared) == ("ann", "bob", 50)
    assert pair.kappa == pytest.approx(0.4)
    assert pair.percent_agreement == pytest.approx(0.7)
    assert pair.note is None
    # Alpha from the coincidence matrix: n = 100 values, n_yes = 55, n_no = 45, and the 15
    # disagreeing items give 30 off-diagonal coincidences:
    # alpha = 1 - (n - 1) * 30 / (2 * 55 * 45) = 1 - 99 * 30 / 4950 = 0.4.
    assert report.overall == {"alpha": pytest.approx(0.4), "items": 50, "labellers": 2,
                              "note": None}
    per_label = report.per_label.set_index("label")
    # Two raters: specific agreement = 2a / (2a + b + c): yes 40 / 55, no 30 / 45.
    assert per_label.loc["yes", "specific_agreement"] == pytest.approx(40 / 55)
    assert per_label.loc["no", "specific_agreement"] == pytest.approx(30 / 45)
    # With two labels, "yes against the rest" is the whole table again.
    assert per_label["alpha"].tolist() == pytest.approx([0.4, 0.4])
    assert per_label["n_labels"].tolist() == [55, 45]
    assert report.notes == ["No item has a final label yet: agreement with the final label not "
                            "computed."]


def test_alpha_matches_krippendorffs_published_example():
    report = agreement(krippendorff_table(), label_set=K_LABELS)
    # Unit 12 has one value, so 11 units and n = 40 values pair up; n_c = 9, 13, 10, 5, 3.
    # Disagreements: unit 2 (2,2,3,2) and unit 8 (1,1,2,1) each give 6 ordered pairs / (m-1 = 3)
    # = 2, unit 6 (1,2,3,4) gives 12 / 3 = 4: 8 in all. n^2 - sum n_c^2 = 1600 - 384 = 1216.
    # alpha = 1 - (n - 1) * 8 / 1216 = 1 - 312 / 1216 = 0.743 (the paper's figure).
    assert report.overall["alpha"] == pytest.approx(1 - 312 / 1216)
    assert round(report.overall["alpha"], 3) == 0.743
    assert (report.overall["items"], report.overall["labellers"]) == (11, 4)
    per_label = report.per_label.set_index("label")
    # Label 4: unit 6 (one 4 among 4 values: 0 of 3 pairings agree), unit 7 (four 4s: 12 of 12).
    # Specific agreement = 12 / 15. One-vs-rest: n_4 = 5, n_rest = 35, 6 ordered disagreeing
    # pairs / 3 = 2, alpha = 1 - 39 * 2 / (2 * 5 * 35) = 1 - 78 / 350.
    assert per_label.loc["4", "specific_agreement"] == pytest.approx(12 / 15)
    assert per_label.loc["4", "alpha"] == pytest.approx(1 - 78 / 350)
    # Label 5 only on unit 10, where all three observers chose it.
    assert per_label.loc["5", ["specific_agreement", "alpha"]].tolist() == pytest.approx([1, 1])
    labellers = report.per_labeller.set_index("labeller")
    assert labellers.loc["B", K_LABELS].tolist() == [2, 4, 3, 1, 1]
    assert labellers["n_labels"].tolist() == [9, 11, 10, 11]


def test_agreement_with_the_final_label_per_labeller():
    final = WIKI[WIKI["labeller"] == "ann"].set_index("item_id")["label"].astype(object)
    final.iloc[:5] = None  # five items still await review: left out, not counted as misses
    report = agreement(WIKI, final=final, label_set=["yes", "no"])
    rows = report.per_labeller.set_index("labeller")
    assert rows["n_with_final"].tolist() == [45, 45]
    assert rows.loc["ann", ["agreement_with_final", "kappa_with_final"]].tolist() == [1.0, 1.0]
    # bob on the 45 items with a final label (the first five were yes/yes): yes/yes 15,
    # yes/no 5, no/yes 10, no/no 15. p_o = 30 / 45; final says yes 20/45, bob 25/45, so
    # p_e = (20 * 25 + 25 * 20) / 45^2 = 1000 / 2025 and kappa = (p_o - p_e) / (1 - p_e).
    p_o, p_e = 30 / 45, 1000 / 2025
    assert rows.loc["bob", "agreement_with_final"] == pytest.approx(p_o)
    assert rows.loc["bob", "kappa_with_final"] == pytest.approx((p_o - p_e) / (1 - p_e))
    assert list(report.per_labeller.columns) == [
        "labeller", "n_labels", "yes", "no", "n_with_final", "agreement_with_final",
        "kappa_with_final", "note"]


def test_count_columns_follow_the_label_set_order():
    report = agreement(WIKI, label_set=["no", "yes"])
    assert list(report.per_labeller.columns[2:4]) == ["no", "yes"]
    assert report.per_label["label"].tolist() == ["no", "yes"]


def test_too_few_shared_items_give_nan_and_say_so():
    three = WIKI[WIKI["item_id"].isin(["i0", "i20", "i45"])]  # yes/yes, yes/no, no/no
    report = agreement(three, label_set=["yes", "no"])
    pair = report.pairs.iloc[0]
    assert pair.shared == 3 and math.isnan(pair.kappa)
    assert pair.note == "only 3 shared items (need 10)"
    assert pair.percent_agreement == pytest.approx(2 / 3)  # raw agreement is still shown
    assert math.isnan(report.overall["alpha"])
    assert report.overall["note"] == "only 3 items with two or more labels (need 10)"
    assert any("Too little overlap to compute Cohen's kappa" in n for n in report.notes)
    assert any("Too little overlap to compute Krippendorff's alpha" in n for n in report.notes)
    assert "too little overlap to compute it" in report.to_text()
    # min_shared is the caller's to lower.
    # min_shared is the caller's to lower: p_o = 2/3, p_e = 2/3 * 1/3 + 1/3 * 2/3 = 4/9, so
    # kappa = (2/3 - 4/9) / (5/9) = 0.4.
    lowered = agreement(three, label_set=["yes", "no"], min_shared=3)
    assert lowered.pairs["kappa"][0] == pytest.approx(0.4)


def test_pairs_sharing_no_item_are_left_out_with_a_note():
    labels = pd.concat([WIKI, table([("x1", "cat", "yes")])])
    report = agreement(labels, label_set=["yes", "no"])
    assert report.pairs[["labeller_a", "labeller_b"]].values.tolist() == [["ann", "bob"]]
    assert "2 pair(s) of labellers share no item and are not listed." in report.notes


@pytest.mark.parametrize("where", ["labels", "final"])
def test_a_label_outside_the_label_set_is_refused(where):
    labels = table([("a", "ann", "yes"), ("a", "bob", "spam")]) if where == "labels" else WIKI
    final = pd.Series({"i0": "maybe"}) if where == "final" else None
    with pytest.raises(ValueError, match=rf"1 value\(s\) in {where} are not in the label set "
                                         r"\['yes', 'no'\]"):
        agreement(labels, final=final, label_set=["yes", "no"])


@pytest.mark.parametrize("labels, message", [
    (table([("a", "ann", "yes"), ("a", "ann", "no")]), "more than one active label on item 'a'"),
    (pd.DataFrame({"item_id": ["a"], "label": ["yes"]}), "missing: labeller"),
])
def test_malformed_tables_are_refused(labels, message):
    with pytest.raises(ValueError, match=message):
        agreement(labels, label_set=["yes", "no"])


def test_label_set_defaults_to_the_labels_seen_sorted():
    assert agreement(WIKI).per_label["label"].tolist() == ["no", "yes"]


def quiet(*args, **kwargs) -> AgreementReport:
    """Run agreement with every warning turned into an error: degenerate input must be silent."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return agreement(*args, **kwargs)


def test_no_labels():
    report = quiet(table([]), label_set=["yes", "no"])
    assert report.pairs.empty and report.per_labeller.empty
    assert report.overall["labellers"] == 0 and math.isnan(report.overall["alpha"])
    assert report.per_label["n_labels"].tolist() == [0, 0]
    assert report.notes == ["No labels yet: nothing to compute."]
    assert "(none)" in report.to_text()


def test_one_labeller():
    report = quiet(WIKI[WIKI["labeller"] == "ann"], label_set=["yes", "no"])
    assert report.pairs.empty
    assert report.overall["note"] == "no item has labels from two labellers"
    assert report.notes[0] == ("Only one labeller (ann): too little overlap to compute Cohen's "
                               "kappa or Krippendorff's alpha.")
    assert report.per_labeller["n_labels"].tolist() == [50]


def test_every_item_labelled_once():
    ann, bob = WIKI[WIKI["labeller"] == "ann"], WIKI[WIKI["labeller"] == "bob"]
    once = pd.concat([ann.head(25), bob.tail(25)])  # ann labels i0..i24, bob i25..i49
    report = quiet(once, label_set=["yes", "no"])
    assert report.pairs.empty
    assert math.isnan(report.overall["alpha"]) and report.overall["items"] == 0
    assert "No two labellers share an item: too little overlap to compute Cohen's kappa." in (
        report.notes)
    assert ("Too little overlap to compute Krippendorff's alpha: no item has labels from two "
            "labellers.") in report.notes
    assert report.per_label["specific_agreement"].isna().all()
    assert "too little overlap to compute it" in report.to_text()


def test_everyone_always_giving_one_label_is_undefined_not_a_warning_storm():
    same = WIKI.assign(label="yes")
    final = same.drop_duplicates("item_id").set_index("item_id")["label"]
    report = quiet(same, final=final, label_set=["yes", "no"])
    pair = report.pairs.iloc[0]
    assert math.isnan(pair.kappa) and pair.percent_agreement == 1.0
    assert pair.note == "only 'yes' on both sides (chance agreement is 1)"
    assert math.isnan(report.overall["alpha"]) and "the same" in report.overall["note"]
    per_label = report.per_label.set_index("label")
    assert per_label.loc["yes", "specific_agreement"] == 1.0
    assert per_label.loc["no", "note"] == "never used on an item with two or more labels"
    assert report.per_labeller["kappa_with_final"].isna().all()
    assert report.per_labeller["agreement_with_final"].tolist() == [1.0, 1.0]
    assert "Cohen's kappa for ann and bob is undefined" in " ".join(report.notes)
    assert "Krippendorff's alpha: undefined" in report.to_text()


def test_report_is_frozen_and_prints_the_figures():
    report = agreement(WIKI, label_set=["yes", "no"])
    with pytest.raises(AttributeError):
        report.notes = []
    text = report.to_text()
    assert "Krippendorff's alpha (nominal): 0.400" in text
    assert "labellers: 2, labels: 100, items with two or more labels: 50" in text
    assert "ann        bob     50 0.400" in text
