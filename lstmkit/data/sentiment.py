"""The embedded sentiment dataset: UCI "Sentiment Labelled Sentences" (Kotzias et al. 2015, CC BY 4.0).

sentiment.tsv holds all 3,000 sentences, 500 positive and 500 negative from each of amazon.com
(phones), imdb.com (films) and yelp.com (restaurants), with the header `text<TAB>label<TAB>source`:
label is "negative" or "positive" (the source's 0 / 1), source is amazon, imdb or yelp.

It was made by build_sentiment_tsv() from the three `*_labelled.txt` files: each file is split on
"\\n" only (the imdb file holds U+0085, which str.splitlines() would also split on), its header line
`sentence<TAB>score` is skipped, each line is split on its last tab, whitespace is trimmed and
collapsed, and the stray C1 control characters (U+0080..U+009F, cp1252 bytes that were read as
Latin-1: U+0085 "…", U+0096 "–", U+0097 "—") are turned back into the characters they stand for.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

SOURCES = {"amazon": "amazon_cells_labelled.txt", "imdb": "imdb_labelled.txt", "yelp": "yelp_labelled.txt"}
LABEL_NAMES = {"0": "negative", "1": "positive"}
HEADER = ("text", "label", "source")
FILE_NAME = "sentiment.tsv"
_C1 = re.compile("[\x80-\x9f]")


def sentiment_sentences() -> tuple[list[str], list[str], list[str]]:
    """The embedded dataset as (texts [3000], labels [3000] "negative"/"positive", sources [3000])."""
    text = resources.files(__package__).joinpath(FILE_NAME).read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.split("\n")[1:] if line]
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def build_sentiment_tsv(folder) -> str:
    """The text of sentiment.tsv, rebuilt from the UCI folder's three files (see the module docstring)."""
    lines = ["\t".join(HEADER)]
    for source, name in SOURCES.items():
        path = Path(folder) / name
        for number, line in enumerate(path.read_text(encoding="utf-8").split("\n")[1:], start=2):
            if not line.strip():
                continue
            sentence, score = line.rsplit("\t", 1)
            if score.strip() not in LABEL_NAMES:
                raise ValueError(f"{path}, line {number}: expected a score 0 or 1, got {score!r}")
            lines.append(f"{_clean(sentence)}\t{LABEL_NAMES[score.strip()]}\t{source}")
    return "\n".join(lines) + "\n"


def _clean(sentence: str) -> str:
    sentence = _C1.sub(lambda m: m.group().encode("latin-1").decode("cp1252"), sentence)
    return " ".join(sentence.split())
