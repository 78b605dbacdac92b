"""How a search, a person search, a compare or a verify decides "match": the threshold and its source.

A fixed cosine threshold does not hold a false-match rate as a gallery grows
(issue #16: 0.45 let 1.4 % of strangers match among 804 people, 8.6 % among
2,900). With the pack's calibration (embeddings/engine/calibration.py) a
search asks for a target false-positive identification rate instead, and the
threshold follows from the number of faces searched:

    1:N (search)   t = FMR^-1(1 - (1 - target_fpir)^(1/N))     threshold_source "target_fpir"
    1:1 (compare)  t = FMR^-1(max_false_match_rate)            threshold_source "max_false_match_rate"
    a `threshold` in the request                               threshold_source "fixed"
    no calibration for the pack: the setting                   threshold_source "default, no calibration"
    compare / verify by default: FACE_MATCH_THRESHOLD          threshold_source "default"

Every answer names its source, and each match carries the calibration's
false-match rate at its similarity (null without a calibration), so a client
can tell how strong a match is whatever threshold let it through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from embeddings.engine import ModelsUnavailable
from embeddings.engine.calibration import Calibration
from embeddings.face_engine import face_engine
from faceservice.errors import Unprocessable

TARGET_FPIR = "target_fpir"
MAX_FALSE_MATCH_RATE = "max_false_match_rate"
FIXED = "fixed"
DEFAULT = "default"
DEFAULT_NO_CALIBRATION = "default, no calibration"
SOURCES = (TARGET_FPIR, MAX_FALSE_MATCH_RATE, FIXED, DEFAULT, DEFAULT_NO_CALIBRATION)

# A false-match rate is shown to 3 significant digits: it is an estimate from a
# finite impostor sample (and a fitted tail above its highest scores).
FMR_DIGITS = 3


class CalibrationUnavailable(Unprocessable):
    """A rate was asked for, but the model pack has no calibration to turn it into a threshold."""

    code = "calibration_unavailable"
    default_message = ("This model pack has no calibration, so a false-match rate cannot be turned into a "
                       "threshold: send a fixed `threshold`, or install the pack's calibration "
                       "(manage.py calibrate_model_pack, docs/MODELS.md).")


@dataclass(frozen=True)
class Decision:
    """The threshold a request used, and how it was chosen (what the answer shows)."""

    threshold: float
    source: str
    calibration: Calibration | None = None
    target_fpir: float | None = None  # 1:N, with source target_fpir
    max_false_match_rate: float | None = None  # 1:1, with source max_false_match_rate
    gallery_size: int | None = None  # the N the threshold was computed for

    def false_match_rate(self, similarity: float | None) -> float | None:
        """The calibration's estimate that two different people score at least `similarity` (None: unknown)."""
        if self.calibration is None or similarity is None:
            return None
        return float(f"{self.calibration.false_match_rate(similarity):.{FMR_DIGITS}g}")


def calibration_for(model_id: str) -> Calibration | None:
    """The loaded pack's calibration if it is the pack of `model_id` (a collection of an older model: None)."""
    try:
        engine = face_engine()
    except ModelsUnavailable:
        return None
    return engine.calibration if engine.model_id == model_id else None


def identification_threshold(*, model_id: str, threshold: float | None, target_fpir: float | None,
                             gallery_size: Callable[[], int]) -> Decision:
    """The 1:N decision of a search over `gallery_size()` faces (or subjects); counted only when needed.

    `threshold` and `target_fpir` exclude each other (the views refuse both).
    Neither: SEARCH_TARGET_FPIR with a calibration, else SEARCH_MATCH_THRESHOLD.
    """
    calibration = calibration_for(model_id)
    if threshold is not None:
        return Decision(threshold=threshold, source=FIXED, calibration=calibration)
    if calibration is None:
        if target_fpir is not None:
            raise CalibrationUnavailable()
        return Decision(threshold=settings.SEARCH_MATCH_THRESHOLD, source=DEFAULT_NO_CALIBRATION)
    target = settings.SEARCH_TARGET_FPIR if target_fpir is None else target_fpir
    size = max(1, gallery_size())
    return Decision(threshold=round(calibration.threshold_for_fpir(target, size), 4), source=TARGET_FPIR,
                    calibration=calibration, target_fpir=target, gallery_size=size)


def verification_threshold(*, model_id: str, threshold: float | None,
                           max_false_match_rate: float | None) -> Decision:
    """The 1:1 decision of a compare or a verify.

    Neither given: FACE_MATCH_THRESHOLD (source "default"), as before issue #16:
    it is the operator's per-pack setting and 0.35 is FMR ~8e-4 for the test pack,
    so a calibrated default would barely move it and would change every client's answers.
    """
    calibration = calibration_for(model_id)
    if threshold is not None:
        return Decision(threshold=threshold, source=FIXED, calibration=calibration)
    if max_false_match_rate is None:
        return Decision(threshold=settings.FACE_MATCH_THRESHOLD, source=DEFAULT, calibration=calibration)
    if calibration is None:
        raise CalibrationUnavailable()
    return Decision(threshold=round(calibration.threshold_for_fmr(max_false_match_rate), 4),
                    source=MAX_FALSE_MATCH_RATE, calibration=calibration,
                    max_false_match_rate=max_false_match_rate)
