"""Agreement in multi-label projects: hand-computed kappas and alphas, MASI over whole sets, a
reference alpha written straight from Krippendorff's definition, and a real Queue."""

from __future__ import annotations

import itertools
import json
import math
import warnings
from fractions import Fraction

import pandas as pd
import pytest

from widgetal import Queue
from widgetal.agreement import agreement
from widgetal.agreement_sets import masi_distance

LABELS = ["billing", "urgent", "refund"]
B, U, R = LABELS


def answer(*labels: str) -> str:
    """The stored form of a set, in project order, as labelsets writes it."""
    return json.dumps([x for x in LABELS if x in labels], separators=(",", ":"))


def table(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["item_id", "labeller", "label"])


def sets_agreement(labels, final=None, min_shared=10):
    return agreement(labels, final=final, label_set=LABELS, min_shared=min_shared,
                     multi_label=True)


# --- an independent reference: Krippendorff's alpha by its definition, pair by pair -----------

def reference_masi(a: frozenset, b: frozenset) -> Fraction:
    """1 - J * M as Passonneau (2006) defines it, in exact fractions."""
    if not a and not b:
        return Fraction(0)
    jaccard = Fraction(len(a & b), len(a | b))
    m = (Fraction(1) if a == b else Fraction(2, 3) if a <= b or b <= a
         else Fraction(1, 3) if a & b else Fraction(0))
    return 1 - jaccard * m


def reference_alpha(units: list[list], distance) -> Fraction:
    """alpha = 1 - (n - 1) * sum_u sum_{i != j in u} d / (m_u - 1) / sum_{i != j, all values} d

    (Krippendorff 2011, with the coincidences written out as pairs of values): units with one
    value are left out, n counts the values that pair up. No matrices, no library.
    """
    units = [u for u in units if len(u) >= 2]
    values = [v for u in units for v in u]
    within = sum(Fraction(sum(distance(a, b) for a, b in itertools.permutations(u, 2)),
                          len(u) - 1) for u in units)
    between = sum(distance(a, b) for a, b in itertools.permutations(values, 2))
    return 1 - (len(values) - 1) * within / between


def reference_kappa(x: list[int], y: list[int]) -> float:
    """Cohen's kappa of two 0/1 lists: (p_o - p_e) / (1 - p_e)."""
    n = len(x)
    p_o = sum(a == b for a, b in zip(x, y)) / n
    p_e = (sum(x) / n) * (sum(y) / n) + (1 - sum(x) / n) * (1 - sum(y) / n)
    return (p_o - p_e) / (1 - p_e)


def test_the_reference_alpha_reproduces_krippendorffs_published_nominal_example():
    # Krippendorff (2011), section C: four observers, twelve units; published alpha 0.743.
    units = [[1, 1, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 3, 3, 3], [2, 2, 2, 2], [1, 2, 3, 4],
             [4, 4, 4, 4], [1, 1, 2, 1], [2, 2, 2, 2], [5, 5, 5], [1, 1], [3]]
    alpha = reference_alpha(units, lambda a, b: Fraction(a != b))
    assert alpha == 1 - Fraction(312, 1216) and round(float(alpha), 3) == 0.743


def test_masi_distance_follows_passonneau():
    s = frozenset
    assert masi_distance(s("a"), s("a")) == 0
    assert masi_distance(s(), s()) == 0  # both said "none of these": they agree
    assert masi_distance(s(), s("a")) == 1  # J = 0
    assert masi_distance(s("a"), s("b")) == 1  # disjoint
    assert masi_distance(s("a"), s("ab")) == pytest.approx(1 - 1 / 2 * 2 / 3)  # subset: 2/3
    assert masi_distance(s("ab"), s("bc")) == pytest.approx(1 - 1 / 3 * 1 / 3)  # overlap: 8/9
    assert masi_distance(s("abc"), s("ab")) == pytest.approx(1 - 2 / 3 * 2 / 3)  # 5/9


# Two labellers, four items:
#   item 1: ann {billing}          bob {billing, urgent}   MASI distance 1 - 1/2 * 2/3 = 2/3
#   item 2: ann {}                 bob {}                  0
#   item 3: ann {refund}           bob {billing}           1
#   item 4: ann {urgent, refund}   bob {urgent}            2/3
TWO = table([(1, "ann", answer(B)), (1, "bob", answer(B, U)),
             (2, "ann", answer()), (2, "bob", answer()),
             (3, "ann", answer(R)), (3, "bob", answer(B)),
             (4, "ann", answer(U, R)), (4, "bob", answer(U))])


def test_two_labellers_by_hand():
    report = sets_agreement(TWO, min_shared=4)
    assert report.multi_label and report.notes == [
        "No item has a final label set yet: agreement with the final label sets not computed."]

    pair = report.pairs.iloc[0]
    # Same set on item 2 only; Jaccard 1/2, 1, 0, 1/2.
    assert (pair.labeller_a, pair.labeller_b, pair.shared) == ("ann", "bob", 4)
    assert pair.percent_agreement == pytest.approx(1 / 4)
    assert pair.mean_jaccard == pytest.approx(2 / 4)

    # Per label, "has it": billing ann 1000, bob 1010: p_o = 3/4, p_e = 1/4 * 2/4 + 3/4 * 2/4
    # = 1/2, kappa = 1/2. urgent ann 0001, bob 1001: the same. refund ann 0011, bob 0000:
    # p_o = 1/2, p_e = 2/4 * 0 + 2/4 * 1 = 1/2, kappa = 0.
    kappas = report.pair_labels.set_index("label")
    assert kappas["kappa"].tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert kappas["percent_agreement"].tolist() == pytest.approx([0.75, 0.75, 0.5])
    assert kappas["note"].isna().all()

    per_label = report.per_label.set_index("label")
    # Binary alpha, n = 8 answers. billing: 3 have it, 5 not, item 3 gives 2 disagreeing
    # ordered pairs: 1 - 7 * 2 / (2 * 3 * 5) = 8/15. urgent the same. refund: 2 have it,
    # items 3 and 4 give 4: 1 - 7 * 4 / (2 * 2 * 6) = -1/6.
    assert per_label["alpha"].tolist() == pytest.approx([8 / 15, 8 / 15, -1 / 6])
    # Specific (positive) agreement 2a / (2a + b + c): billing 2/3, urgent 2/3, refund 0.
    assert per_label["specific_agreement"].tolist() == pytest.approx([2 / 3, 2 / 3, 0])
    assert per_label["kappa"].tolist() == pytest.approx([0.5, 0.5, 0.0])  # one pair: its kappa
    assert per_label["n_labels"].tolist() == [3, 3, 2]

    # The overall alpha: the mean of the per-label ones, (8/15 + 8/15 - 1/6) / 3 = 0.3.
    # MASI alpha. Within items: 2 * (2/3 + 0 + 1 + 2/3) = 14/3 over m - 1 = 1.
    # Between all 8 answers ({b} twice, {} twice, {b,u}, {r}, {u,r}, {u}), the 28 unordered
    # pairs' distances sum to 20 + 38/9 = 218/9 (e.g. {b,u}-{u,r}: J = 1/3, M = 1/3, 8/9),
    # ordered 436/9. alpha = 1 - 7 * (14/3) / (436/9) = 1 - 294/436 = 71/218.
    assert report.overall == {"alpha": pytest.approx(0.3), "items": 4, "labellers": 2,
                              "note": None, "masi_alpha": pytest.approx(71 / 218),
                              "masi_note": None}
    units = [[frozenset(json.loads(v)) for v in g["label"]] for _, g in TWO.groupby("item_id")]
    assert reference_alpha(units, reference_masi) == Fraction(71, 218)

    text = report.to_text()
    assert "Krippendorff's alpha (mean of the per-label alphas): 0.300" in text
    assert "Krippendorff's alpha over whole label sets (MASI distance): 0.326" in text
    assert "answers (label sets): 8, items with two or more labels: 4" in text


# Three labellers, ten items, some answers missing (None).
THREE = {
    1: [(B,), (B,), (B,)],
    2: [(B, U), (B,), (B, U)],
    3: [(), (), None],
    4: [(R,), (B, R), (R,)],
    5: [(U,), (U,), (U, R)],
    6: [(B, R), None, (R,)],
    7: [(), (U,), ()],
    8: [(U, R), (U, R), (U,)],
    9: [None, (B,), (B,)],
    10: [(R,), (R,), None],
}
WHO = ["ann", "bob", "cat"]


def three_table() -> pd.DataFrame:
    return table([(item, who, answer(*given)) for item, row in THREE.items()
                  for who, given in zip(WHO, row) if given is not None])


def test_three_labellers_match_the_definitions():
    report = sets_agreement(three_table(), min_shared=5)
    # Whole sets: MASI alpha equals the reference computed pair by pair from the raw answers.
    units = [[frozenset(g) for g in row if g is not None] for row in THREE.values()]
    assert report.overall["masi_alpha"] == pytest.approx(float(reference_alpha(
        units, reference_masi)))
    assert report.overall["items"] == 10 and report.overall["labellers"] == 3

    per_label = report.per_label.set_index("label")
    kappas = report.pair_labels.set_index(["labeller_a", "labeller_b", "label"])["kappa"]
    alphas = []
    for label in LABELS:
        # Binary alpha per label: the same reference with the nominal distance on "has it".
        has = [[label in g for g in u] for u in units]
        alphas.append(float(reference_alpha(has, lambda a, b: Fraction(a != b))))
        assert per_label.loc[label, "alpha"] == pytest.approx(alphas[-1]), label
        pair_kappas = []
        for a, b in itertools.combinations(range(3), 2):
            both = [row for row in THREE.values() if row[a] is not None and row[b] is not None]
            x, y = [int(label in r[a]) for r in both], [int(label in r[b]) for r in both]
            pair_kappas.append(reference_kappa(x, y))
            assert kappas[(WHO[a], WHO[b], label)] == pytest.approx(pair_kappas[-1])
        # Light's kappa: the mean over the three pairs.
        assert per_label.loc[label, "kappa"] == pytest.approx(sum(pair_kappas) / 3)
    assert report.overall["alpha"] == pytest.approx(sum(alphas) / 3)

    pairs = report.pairs.set_index(["labeller_a", "labeller_b"])
    # ann and bob share items 1, 2, 3, 4, 5, 7, 8, 10; same set on 1, 3, 5, 8, 10.
    # Jaccard: 1, 1/2, 1, 1/2, 1, 0, 1, 1.
    assert pairs.loc[("ann", "bob"), "shared"] == 8
    assert pairs.loc[("ann", "bob"), "percent_agreement"] == pytest.approx(5 / 8)
    assert pairs.loc[("ann", "bob"), "mean_jaccard"] == pytest.approx(6 / 8)
    # ann and bob on their shared items, in the order 1, 2, 3, 4, 5, 7, 8, 10:
    # urgent 01001010 vs 00001110: p_o = 6/8, p_e = 3/8 * 3/8 + 5/8 * 5/8 = 34/64,
    # kappa = (48/64 - 34/64) / (30/64) = 7/15. refund 00010011 both: kappa 1.
    assert kappas[("ann", "bob", U)] == pytest.approx(7 / 15)
    assert kappas[("ann", "bob", R)] == pytest.approx(1.0)


def test_per_labeller_agreement_with_the_final_sets():
    labels = three_table()
    # Final sets where the three (or two) agree, plus a reviewer's {billing, urgent} on item 2.
    final = pd.Series({1: answer(B), 2: answer(B, U), 3: answer(), 9: answer(B),
                       10: answer(R)})
    report = sets_agreement(labels, final=final, min_shared=5)
    rows = report.per_labeller.set_index("labeller")
    # ann: items 1, 2, 3, 10 all match. bob: 1, 3, 9, 10 match, item 2 {b} vs {b,u}: J = 1/2.
    # cat: 1, 2, 9 match (3 and 10 unanswered).
    assert rows["n_with_final"].tolist() == [4, 5, 3]
    assert rows["agreement_with_final"].tolist() == pytest.approx([1, 4 / 5, 1])
    assert rows["jaccard_with_final"].tolist() == pytest.approx([1, 4.5 / 5, 1])
    # Answers, and answers holding each label (bob: b on 1, 2, 4, 9; u on 5, 7, 8; r on 4, 8, 10).
    assert rows.loc["bob", ["n_labels", B, U, R]].tolist() == [9, 4, 3, 3]
    assert list(report.per_labeller.columns) == [
        "labeller", "n_labels", B, U, R, "n_with_final", "agreement_with_final",
        "jaccard_with_final", "note"]


def test_equal_sets_written_in_another_order_are_the_same_answer():
    swapped = TWO.replace({answer(U, R): '["refund", "urgent"]'})
    final = pd.Series({4: '["refund","urgent"]'})
    report = sets_agreement(swapped, final=final, min_shared=4)
    assert report.overall["masi_alpha"] == pytest.approx(71 / 218)
    assert report.per_labeller.set_index("labeller").loc["ann", "agreement_with_final"] == 1


@pytest.mark.parametrize("value, where", [("billing", "labels"), ('["spam"]', "labels"),
                                          ('{"billing": 1}', "labels"), ('["spam"]', "final")])
def test_a_value_that_is_not_a_label_set_is_refused(value, where):
    labels = table([(1, "ann", value), (1, "bob", answer(B))]) if where == "labels" else TWO
    final = pd.Series({1: value}) if where == "final" else None
    with pytest.raises(ValueError, match=rf"1 value\(s\) in {where} are not label sets over "):
        sets_agreement(labels, final=final)


def test_label_sets_need_the_label_set_and_one_answer_per_labeller():
    with pytest.raises(ValueError, match="label_set is needed"):
        agreement(TWO, multi_label=True)
    twice = pd.concat([TWO, table([(1, "ann", answer(U))])])
    with pytest.raises(ValueError, match="more than one active label set on item 1"):
        sets_agreement(twice)


def quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return sets_agreement(*args, **kwargs)


def test_too_little_overlap_gives_nan_and_says_so():
    report = quiet(TWO)  # 4 shared items, min_shared 10
    assert math.isnan(report.overall["alpha"]) and math.isnan(report.overall["masi_alpha"])
    assert report.overall["note"] == "only 4 items with two or more labels (need 10)"
    assert report.overall["masi_note"] == report.overall["note"]
    assert report.pair_labels["kappa"].isna().all() and report.per_label["kappa"].isna().all()
    assert set(report.pair_labels["note"]) == {"only 4 shared items (need 10)"}
    assert report.pairs["percent_agreement"].tolist() == [0.25]  # raw figures still shown
    assert ("Too little overlap to compute Cohen's kappa for 1 of 1 pair(s): fewer than 10 "
            "shared items.") in report.notes
    assert ("Too little overlap to compute Krippendorff's alpha: only 4 items with two or more "
            "labels (need 10).") in report.notes
    assert "too little overlap to compute it" in report.to_text()


def test_a_label_nobody_uses_and_one_set_for_everything_are_undefined_quietly():
    never = quiet(TWO[TWO["item_id"] != 3].replace({answer(U, R): answer(U)}), min_shared=3)
    kappas = never.pair_labels.set_index("label")
    assert kappas.loc[R, "note"] == "neither gave 'refund' on a shared item (chance agreement is 1)"
    assert never.per_label.set_index("label").loc[R, "note"] == (
        "never used on an item with two or more labels")
    assert "Cohen's kappa on 'refund' for ann and bob is undefined" in " ".join(never.notes)

    # Items 1, 2, 4: {b}/{b,u}, {}/{}, {u}/{u}. billing 100 vs 100: alpha 1. urgent 001 vs
    # 101: n = 6, 3 have it, one disagreeing item: 1 - 5 * 2 / (2 * 3 * 3) = 4/9. The mean
    # leaves refund out: (1 + 4/9) / 2 = 13/18.
    assert "The mean of the per-label alphas leaves out 'refund'" in " ".join(never.notes)
    assert never.per_label["alpha"][:2].tolist() == pytest.approx([1, 4 / 9])
    assert never.overall["alpha"] == pytest.approx(13 / 18)

    same = quiet(TWO.assign(label=answer(B, U)), min_shared=3)
    assert math.isnan(same.overall["alpha"]) and math.isnan(same.overall["masi_alpha"])
    assert same.overall["note"] == ("each label is in every answer or in none on items with two "
                                    "or more labels, so there is nothing to compare")
    assert same.overall["masi_note"] == ("every answer on shared items is the same label set, "
                                         "so there is nothing to compare")
    per_label = same.per_label.set_index("label")
    assert per_label.loc[B, "note"] == "in every answer on items with two or more labels"
    assert same.pair_labels.set_index("label").loc[U, "note"] == (
        "both gave 'urgent' on every shared item (chance agreement is 1)")
    assert "Krippendorff's alpha: undefined" in same.to_text()


def test_no_labels_and_one_labeller():
    empty = quiet(table([]))
    assert empty.pairs.empty and empty.pair_labels.empty and empty.per_labeller.empty
    assert empty.notes == ["No labels yet: nothing to compute."]
    alone = quiet(TWO[TWO["labeller"] == "ann"])
    assert alone.overall["note"] == "no item has labels from two labellers"
    assert alone.per_labeller["n_labels"].tolist() == [4]


def test_single_label_reports_keep_their_shape():
    report = agreement(table([(1, "ann", "a"), (1, "bob", "a")]), label_set=["a", "b"])
    assert not report.multi_label and report.pair_labels is None
    assert [title for title, _ in report.tables()] == [
        "Pairs of labellers (Cohen's kappa)", "Per label", "Per labeller"]


def test_a_multi_label_queue_with_overlap_two_reports_set_agreement(db_url):
    q = Queue(db_url, labels=LABELS, multi_label=True)
    try:
        q.configure(overlap=2)
        q.add([f"ticket {n}" for n in range(1, 5)])
        # The TWO example again, given through the queue; ann and bob agree on ticket 2 only.
        wanted = {"ann": {1: [B], 2: [], 3: [R], 4: [R, U]},
                  "bob": {1: [U, B], 2: [], 3: [B], 4: [U]}}
        for who, answers in wanted.items():
            while (item := q.pop(who)) is not None:
                q.submit(item.item_id, answers[int(item.text.split()[1])], who)
        report = q.agreement(min_shared=4)
    finally:
        q.engine.dispose()
    assert report.multi_label
    assert report.overall["alpha"] == pytest.approx(0.3)
    assert report.overall["masi_alpha"] == pytest.approx(71 / 218)
    assert report.pair_labels["kappa"].tolist() == pytest.approx([0.5, 0.5, 0.0])
    # Only ticket 2 is settled (both gave the empty set); the others await review.
    rows = report.per_labeller.set_index("labeller")
    assert rows["n_with_final"].tolist() == [1, 1]
    assert rows["agreement_with_final"].tolist() == [1.0, 1.0]


def test_masi_alpha_is_left_out_with_a_note_when_the_array_would_be_too_large(monkeypatch):
    import widgetal.agreement_sets as sets

    # TWO after merging: 3 items with differing answers plus one row for the unanimous {},
    # over 6 distinct sets: 4 * 6 * 6 = 144 elements.
    monkeypatch.setattr(sets, "MASI_BUDGET", 143)
    report = quiet(TWO, min_shared=4)
    assert math.isnan(report.overall["masi_alpha"])
    assert report.overall["masi_note"].startswith(
        "not computed: 3 items with differing answers over 6 distinct label sets")
    assert report.overall["alpha"] == pytest.approx(0.3)  # the headline figure stays
    assert any(n.startswith("Krippendorff's alpha over whole label sets (MASI) is not computed")
               for n in report.notes)
    assert "Krippendorff's alpha over whole label sets: not computed" in report.to_text()
    monkeypatch.setattr(sets, "MASI_BUDGET", 144)
    assert quiet(TWO, min_shared=4).overall["masi_alpha"] == pytest.approx(71 / 218)


def test_widgetal_agreement_prints_both_alphas_for_a_multi_label_project(sqlite_url):
    from typer.testing import CliRunner

    from widgetal.cli import app

    q = Queue(sqlite_url, labels=LABELS, multi_label=True)
    q.configure(overlap=2)
    q.add([f"ticket {n}" for n in range(1, 5)])
    wanted = {"ann": {1: [B], 2: [], 3: [R], 4: [R, U]}, "bob": {1: [U, B], 2: [], 3: [B], 4: [U]}}
    for who, answers in wanted.items():
        while (item := q.pop(who)) is not None:
            q.submit(item.item_id, answers[int(item.text.split()[1])], who)
    q.engine.dispose()
    result = CliRunner().invoke(app, ["agreement", "--min-shared", "4", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert "Krippendorff's alpha (mean of the per-label alphas): 0.300" in result.output
    assert "Krippendorff's alpha over whole label sets (MASI distance): 0.326" in result.output
    assert "ann        bob  refund      4 0.000" in result.output
