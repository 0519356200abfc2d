"""Tokens to ids and back: word tokenisation and a vocabulary that saves as JSON."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
_WORD = re.compile(r"[\w']+|[^\w\s]", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens: "Don't stop!" -> ["don't", "stop", "!"]."""
    return _WORD.findall(text.lower())


class Vocabulary:
    """Token <-> id. Specials come first (id 0 is PAD when present); unknown tokens map to UNK.

    Built from data, tokens are ordered by falling count, ties by the token, so the same data
    gives the same ids."""

    def __init__(self, tokens: Sequence[str], unknown: str | None = UNK):
        self.tokens = list(tokens)
        self.ids = {t: k for k, t in enumerate(self.tokens)}
        if len(self.ids) != len(self.tokens):
            raise ValueError("a vocabulary cannot hold the same token twice")
        if unknown is not None and unknown not in self.ids:
            raise ValueError(f"the unknown token {unknown!r} is not in the vocabulary")
        self.unknown = unknown

    @classmethod
    def build(cls, sequences: Iterable[Iterable[str]], specials: Sequence[str] = (PAD, UNK),
              min_count: int = 1, max_size: int | None = None, unknown: str | None = UNK) -> "Vocabulary":
        counts = Counter(t for seq in sequences for t in seq)
        ranked = sorted((t for t, n in counts.items() if n >= min_count and t not in specials),
                        key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[:max(0, max_size - len(specials))]
        return cls([*specials, *ranked], unknown=unknown)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.ids

    def encode(self, tokens: Iterable[str]) -> list[int]:
        if self.unknown is None:
            try:
                return [self.ids[t] for t in tokens]
            except KeyError as exc:
                raise ValueError(f"token {exc.args[0]!r} is not in the vocabulary") from None
        unk = self.ids[self.unknown]
        return [self.ids.get(t, unk) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[int(k)] for k in ids]

    def to_json(self) -> dict:
        return {"tokens": self.tokens, "unknown": self.unknown}

    @classmethod
    def from_json(cls, data: dict) -> "Vocabulary":
        return cls(data["tokens"], unknown=data.get("unknown"))
