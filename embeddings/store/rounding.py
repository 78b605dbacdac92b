"""The one rounding rule for numbers the API shows about faces.

Boxes are pixels: a tenth of a pixel is finer than any detector's error.
Scores and similarities keep 4 decimals: thresholds are set to 2 or 3, and
more digits only made the same face read differently from one endpoint to the
next (search, compare, index-job results and face listings all use these).
"""

from __future__ import annotations

from collections.abc import Iterable

BOX_DECIMALS = 1
SCORE_DECIMALS = 4


def box(values: Iterable[float]) -> list[float]:
    """[x1, y1, x2, y2] in pixels, to a tenth of a pixel."""
    return [round(float(v), BOX_DECIMALS) for v in values]


def score(value: float) -> float:
    """A detection score or a cosine similarity, to 4 decimals."""
    return round(float(value), SCORE_DECIMALS)
