"""Sentence pairs for translation: reading a pairs file, word tokens and back, the embedded Tatoeba set.

A pairs file is UTF-8 text (or --encoding), one pair per line, fields split on tabs:

    source<TAB>target[<TAB>anything else...]      the first two fields are used (Tatoeba/Anki style)

If the first line's fields include both `source` and `target` (a header), those named columns are
used instead and the header is skipped. Blank lines are skipped; a line without a tab, or with an
empty source or target, is an error naming its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .errors import DataError
from .tables import read_text

EMBEDDED_FILE = "tatoeba_eng_fra.tsv"
# Words keep their apostrophes and hyphens ("l'ont", "dis-moi"), as sacreBLEU's 13a tokeniser does.
_TOKEN = re.compile(r"[\w']+(?:-[\w']+)*|[^\w\s]", re.UNICODE)
_NO_SPACE_BEFORE = {".", ",", "!", "?", ";", ":", ")", "%", "…"}
_NO_SPACE_AFTER = {"(", "¿", "¡"}


@dataclass
class Pairs:
    """Parallel sentences: sources[k] translates to targets[k]; lines[k] is its line in `path`."""

    path: Path | None
    sources: list[str]
    targets: list[str]
    lines: list[int] = field(repr=False)

    def __len__(self) -> int:
        return len(self.sources)

    def subset(self, index) -> "Pairs":
        index = list(index)
        return Pairs(self.path, [self.sources[k] for k in index], [self.targets[k] for k in index],
                     [self.lines[k] for k in index])


def read_pairs(path, encoding: str = "utf-8") -> Pairs:
    """The pairs of a tab-separated file (see the module docstring); DataError names file, line, column."""
    path = Path(path)
    text = read_text(path, encoding, what="tab-separated sentence-pairs")
    records = [(n, line.rstrip("\r").split("\t")) for n, line in enumerate(text.split("\n"), start=1)
               if line.strip()]
    first = [f.strip().lower() for f in records[0][1]]
    if "source" in first and "target" in first:
        columns = {"source": first.index("source"), "target": first.index("target")}
        records = records[1:]
        if not records:
            raise DataError(path, "has a header (source, target) but no sentence pairs", line=1)
    else:
        columns = {"source": 0, "target": 1}
    sources, targets, lines = [], [], []
    for number, fields in records:
        for name, k in columns.items():
            if k >= len(fields):
                raise DataError(path, f"expected source<TAB>target, got {len(fields)} field(s) "
                                      f"({_clip(fields[0])!r}); is the {name} missing or the tab a space?",
                                line=number, column=name)
            if not tokenize(fields[k]):
                raise DataError(path, f"empty {name} sentence", line=number, column=name)
        sources.append(fields[columns["source"]].strip())
        targets.append(fields[columns["target"]].strip())
        lines.append(number)
    return Pairs(path, sources, targets, lines)


def tokenize(sentence: str, lowercase: bool = False) -> list[str]:
    """Word and punctuation tokens: "Il l'a vu !" -> ["Il", "l'a", "vu", "!"]."""
    return _TOKEN.findall(sentence.lower() if lowercase else sentence)


def detokenize(tokens: list[str]) -> str:
    """Tokens -> a sentence: spaces between words, none before closing punctuation ("vu !" -> "vu!")."""
    out = ""
    for token in tokens:
        if out and token not in _NO_SPACE_BEFORE and out[-1] not in _NO_SPACE_AFTER:
            out += " "
        out += token
    return out


def tatoeba_eng_fra() -> Pairs:
    """The embedded English -> French pairs: 6,152 short Tatoeba pairs (via manythings.org, CC BY 2.0 FR).

    They are the lines of the 18,065 complete pairs of tatoeba-eng-fra-small (the prefix of manythings.org's
    fra.txt, sentences of 1-5 English words) whose every word, lower-cased, is among the 700 commonest
    of its language in those pairs, in file order: a small closed vocabulary that a model learns in
    minutes."""
    resource = resources.files(__package__).joinpath(EMBEDDED_FILE)
    with resources.as_file(resource) as path:
        pairs = read_pairs(path)
    pairs.path = Path(f"<embedded {EMBEDDED_FILE}>")
    return pairs


def _clip(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[:n] + "..."
