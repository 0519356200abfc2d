"""The embedded text of `lstmkit generate`: the opening of Karpathy's tiny Shakespeare.

tinyshakespeare_excerpt.txt holds the first 149,961 characters (5,769 lines, ending after a
speech, at a line boundary) of karpathy/char-rnn data/tinyshakespeare/input.txt (commit
6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e): scenes of Coriolanus, public-domain text.
"""

from __future__ import annotations

from importlib import resources

EXCERPT_FILE = "tinyshakespeare_excerpt.txt"
EXCERPT_SOURCE = ("the first 149,961 characters of Karpathy's tiny Shakespeare "
                  "(karpathy/char-rnn data/tinyshakespeare/input.txt; public-domain plays)")


def tiny_shakespeare_excerpt() -> str:
    """The embedded excerpt as one str (ASCII, lines ending in "\\n")."""
    return resources.files(__package__).joinpath(EXCERPT_FILE).read_text(encoding="utf-8")
