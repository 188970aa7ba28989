"""Write widgetal/data/sample.csv: short product-review-like sentences made from word templates.

The sample is generated, not collected, so the repository can ship it freely. It is seeded and
deterministic: running this again rewrites the same file. Columns: ``id``, ``text`` and
``label`` (``negative`` / ``positive``), the label being the sentiment the template was built
with. The quickstart imports ``id`` and ``text`` only and people label; ``widgetal simulate``
can replay the ``label`` column.

Usage: ``python scripts/make_sample.py [--rows 400] [--out widgetal/data/sample.csv]``
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

PRODUCTS = [
    "kettle", "blender", "desk lamp", "backpack", "phone case", "headset", "coffee grinder",
    "rain jacket", "keyboard", "water bottle", "toaster", "office chair", "bike light",
    "frying pan", "charger", "sleeping bag", "speaker", "umbrella", "mouse", "tent",
]
GOOD = [
    "works perfectly", "feels solid and well made", "was easy to set up", "is worth every penny",
    "arrived quickly and well packed", "does exactly what it promises", "is quiet and reliable",
    "still looks new after months", "exceeded my expectations", "is comfortable to use",
]
BAD = [
    "stopped working after a week", "feels cheap and flimsy", "was a pain to set up",
    "is not worth the money", "arrived scratched and dented", "does not do what it promises",
    "is loud and unreliable", "fell apart within a month", "was a big disappointment",
    "is awkward to use",
]
OPENERS = ["", "Honestly, ", "Overall ", "After a month, ", "As a gift, ", "For the price, "]
SUBJECTS = ["the {p}", "this {p}", "my new {p}", "the {p} I ordered"]
ENDINGS = {
    "positive": ["", " I would buy it again.", " Recommended.", " Five stars.", " Very happy."],
    "negative": ["", " I sent it back.", " Avoid.", " One star.", " Not happy at all."],
}


def make_rows(n: int, seed: int = 20261121) -> list[dict[str, str]]:
    """``n`` distinct sentences, half of each label, in a shuffled order."""
    rng = random.Random(seed)
    seen: set[str] = set()
    rows: list[dict[str, str]] = []
    while len(rows) < n:
        label = "positive" if len(rows) % 2 == 0 else "negative"
        phrases, other = (GOOD, BAD) if label == "positive" else (BAD, GOOD)
        subject = rng.choice(SUBJECTS).format(p=rng.choice(PRODUCTS))
        if rng.random() < 0.15:  # harder ones: a concession, then the verdict
            body = f"{subject} {rng.choice(other)}, but it {rng.choice(phrases)}"
        else:
            body = f"{subject} {rng.choice(phrases)}"
        text = rng.choice(OPENERS) + body + "." + rng.choice(ENDINGS[label])
        text = text[0].upper() + text[1:]
        if text not in seen:
            seen.add(text)
            rows.append({"text": text, "label": label})
    rng.shuffle(rows)
    return [{"id": f"r{i:04d}", **row} for i, row in enumerate(rows, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400)
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--out", type=Path, default=root / "widgetal" / "data" / "sample.csv")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "text", "label"])
        writer.writeheader()
        writer.writerows(make_rows(args.rows))
    print(f"wrote {args.rows} rows to {args.out}")


if __name__ == "__main__":
    main()
