"""The final label of each item, from its labels and any review: pure pandas, no database.

Order of precedence (DESIGN.md): a reviewer's decision; else the label every labeller gave;
else, if the project allows it, the strict majority; else none (the item awaits review).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # needs_review runs on a labeller's submit, where pandas is not loaded
    import pandas as pd


def needs_review(item_labels: Sequence[str], on_disagreement: str = "review") -> bool:
    """Whether a complete item's labels leave it without a final label until a reviewer decides.

    >>> needs_review(["pos", "pos", "neg"], "majority"), needs_review(["pos", "neg"], "majority")
    (False, True)
    """
    counts = Counter(item_labels).most_common()
    if len(counts) <= 1:
        return False
    top = counts[0][1]
    return not (on_disagreement == "majority" and 2 * top > len(item_labels))


def final_labels(
    labels: pd.DataFrame, decisions: pd.DataFrame, on_disagreement: str = "review"
) -> pd.DataFrame:
    """One row per item that has a final label: ``item_id``, ``label``, ``source``, ``by``.

    Parameters
    ----------
    labels : DataFrame
        Active labels of complete items: ``item_id``, ``label``, ``labeller``.
    decisions : DataFrame
        Review decisions that count: ``item_id``, ``label``, ``reviewer``.
    on_disagreement : {"review", "majority"}
        Whether a strict majority settles a disagreement.

    Returns
    -------
    DataFrame
        ``source`` is ``labels`` (all agree, one label included), ``majority`` or ``review``;
        ``by`` names the reviewer, or the labellers who gave the final label (comma-joined).
    """
    import pandas as pd

    columns = ["item_id", "label", "source", "by"]
    if labels.empty and decisions.empty:
        return pd.DataFrame(columns=columns)
    counts = labels.groupby(["item_id", "label"], sort=False).size().rename("n").reset_index()
    totals = counts.groupby("item_id")["n"].transform("sum")
    kinds = counts.groupby("item_id")["label"].transform("size")
    top = counts.sort_values(["item_id", "n"], ascending=[True, False]).drop_duplicates("item_id")
    top = top.set_index("item_id")
    top["total"] = totals.groupby(counts["item_id"]).first()
    top["kinds"] = kinds.groupby(counts["item_id"]).first()
    agreed = top["kinds"] == 1
    majority = (2 * top["n"] > top["total"]) & ~agreed & (on_disagreement == "majority")
    top["source"] = "labels"
    top.loc[majority, "source"] = "majority"
    settled = top[agreed | majority].reset_index()[["item_id", "label", "source"]]
    givers = labels.merge(settled[["item_id", "label"]], on=["item_id", "label"])
    by = givers.groupby("item_id")["labeller"].agg(lambda s: ",".join(sorted(set(s))))
    settled["by"] = settled["item_id"].map(by)
    reviewed = decisions.rename(columns={"reviewer": "by"}).assign(source="review")[columns]
    settled = settled[~settled["item_id"].isin(reviewed["item_id"])]
    out = pd.concat([reviewed, settled], ignore_index=True) if len(reviewed) else settled
    return out.sort_values("item_id").reset_index(drop=True)[columns]
