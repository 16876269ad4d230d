"""How well a text was read: the character error rate the tests and benchmarks use."""

from __future__ import annotations

from rapidfuzz.distance import Levenshtein


def fold(text: str) -> str:
    """Runs of whitespace folded to one space, ends trimmed (line breaks and layout do not count)."""
    return " ".join(text.split())


def cer(text: str, truth: str) -> float:
    """Character error rate: edit distance after folding whitespace, over the truth's length."""
    expected = fold(truth)
    return Levenshtein.distance(fold(text), expected) / max(1, len(expected))
