"""A model pack's calibration: its impostor score distribution, and thresholds for a false-match rate.

A fixed cosine threshold does not hold a false-match rate: against a gallery
of N faces the chance that some stranger clears it grows with N. With the
pack's impostor (different-person) score distribution measured once from
labelled photos, a search can ask for a target false-positive identification
rate instead, and the threshold follows from the gallery size:

    FMR(t)  = P(impostor score >= t)               (false_match_rate)
    FPIR(t) = 1 - (1 - FMR(t))^N                   (N faces searched, scores taken as independent)
    t       = FMR^-1(1 - (1 - target)^(1/N))       (threshold_for_fpir)

What is stored (JSON, `calibration.json` in the pack's folder or
`<pack>.calibration.json` in a configured folder, with the model id it was
measured for): a histogram of all impostor scores in bins of 0.001, and the
TAIL_SIZE highest scores exactly.

FMR is never exactly 0 (the rule): where at least TAIL_SIZE impostor scores
lie at or above t, FMR is the histogram's (interpolated within the bin); above
that, an exponential tail fitted to the TAIL_SIZE highest scores (peaks over a
threshold with the generalized Pareto shape fixed at 0, fitted by maximum
likelihood: the scale is the mean excess). Cosine impostor tails are lighter
than exponential, so the tail errs towards a higher FMR, i.e. a stricter
threshold; how close it comes on held-out identities is measured by
bench/bench_calibration.py (docs/MODELS.md, "Calibration").

Pure numpy, no Django: the management command `calibrate_model_pack` and the
benchmarks compute one from a folder of one-folder-per-person photos (LFW's
layout; labelled.py embeds them).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

FORMAT = 1
BIN_WIDTH = 0.001
BINS = round(2.0 / BIN_WIDTH)  # scores in [-1, 1]
TAIL_SIZE = 500  # highest impostor scores kept exactly, and fitted above
FILE_NAME = "calibration.json"
_BLOCK = 2048  # embeddings per block when scoring all pairs


class CalibrationError(ValueError):
    """A calibration file that cannot be used (unreadable, wrong format, or too few scores)."""


@dataclass(frozen=True)
class Calibration:
    """The impostor score distribution of one model (model_id), measured on `source`."""

    model_id: str
    source: str
    count: int  # impostor pairs measured
    counts: np.ndarray = field(repr=False)  # BINS counts; bin i holds [-1 + i*BIN_WIDTH, -1 + (i+1)*BIN_WIDTH)
    tail: np.ndarray = field(repr=False)  # the highest scores, descending

    def __post_init__(self) -> None:
        if self.count < TAIL_SIZE or len(self.tail) < 2 or int(self.counts.sum()) != self.count:
            raise CalibrationError(f"a calibration needs at least {TAIL_SIZE} impostor scores")
        # The histogram's survival function, from the top bin down: at_or_above[i]
        # = number of scores in bins i..BINS-1.
        object.__setattr__(self, "_at_or_above", np.cumsum(self.counts[::-1])[::-1].astype(np.float64))
        tail = np.sort(np.asarray(self.tail, dtype=np.float64))[::-1]
        object.__setattr__(self, "tail", tail)
        # Exponential tail over u, the lowest kept score: P(s >= u + y) = p_u · exp(-y / beta).
        object.__setattr__(self, "_u", float(tail[-1]))
        object.__setattr__(self, "_p_u", len(tail) / self.count)
        object.__setattr__(self, "_beta", max(float(np.mean(tail - tail[-1])), 1e-6))

    # Rates -----------------------------------------------------------------
    def false_match_rate(self, score: float) -> float:
        """P(an impostor pair scores >= score): histogram in the body, fitted tail above (never 0)."""
        if score > self._u:
            return self._p_u * math.exp(-(score - self._u) / self._beta)
        position = (min(max(score, -1.0), 1.0) + 1.0) / BIN_WIDTH
        index = min(int(position), BINS - 1)
        above_bin = self._at_or_above[index + 1] if index + 1 < BINS else 0.0
        inside = self._at_or_above[index] - above_bin
        # Uniform within the bin: the part of bin `index` at or above the score.
        fraction = 1.0 - (position - index)
        return float((above_bin + inside * fraction) / self.count)

    def threshold_for_fmr(self, fmr: float) -> float:
        """The lowest score whose false-match rate is at most `fmr` (clamped to [-1, 1])."""
        if not 0.0 < fmr <= 1.0:
            raise ValueError("fmr must be in (0, 1]")
        if fmr < self._p_u:
            return min(1.0, self._u + self._beta * math.log(self._p_u / fmr))
        wanted = fmr * self.count
        # The first bin (from the top) where the count at or above reaches `wanted`.
        index = int(np.searchsorted(-self._at_or_above, -wanted, side="right")) - 1
        index = max(index, 0)
        above_bin = self._at_or_above[index + 1] if index + 1 < BINS else 0.0
        inside = self._at_or_above[index] - above_bin
        fraction = (wanted - above_bin) / inside if inside else 1.0
        return float(-1.0 + (index + 1 - fraction) * BIN_WIDTH)

    def threshold_for_fpir(self, target: float, gallery_size: int) -> float:
        """The threshold at which a search of `gallery_size` faces falsely matches a stranger with
        probability `target` (FPIR = 1 - (1 - FMR)^N)."""
        if not 0.0 < target < 1.0:
            raise ValueError("target must be in (0, 1)")
        return self.threshold_for_fmr(fmr_for_fpir(target, max(1, int(gallery_size))))

    def fpir(self, threshold: float, gallery_size: int) -> float:
        """The predicted false-positive identification rate at `threshold` for `gallery_size` faces."""
        return fpir_for_fmr(self.false_match_rate(threshold), max(1, int(gallery_size)))

    # Storage ---------------------------------------------------------------
    def as_dict(self) -> dict:
        nonzero = np.flatnonzero(self.counts)
        first, last = (int(nonzero[0]), int(nonzero[-1])) if len(nonzero) else (0, -1)
        return {"format": FORMAT, "model_id": self.model_id, "source": self.source, "count": self.count,
                "bin_width": BIN_WIDTH, "first_bin": first, "counts": self.counts[first:last + 1].tolist(),
                "tail": [float(s) for s in self.tail]}

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        try:
            if data["format"] != FORMAT or not math.isclose(data["bin_width"], BIN_WIDTH):
                raise CalibrationError(f"unknown calibration format {data.get('format')!r}")
            counts = np.zeros(BINS, dtype=np.int64)
            first = int(data["first_bin"])
            values = np.asarray(data["counts"], dtype=np.int64)
            counts[first:first + len(values)] = values
            return cls(model_id=str(data["model_id"]), source=str(data["source"]), count=int(data["count"]),
                       counts=counts, tail=np.asarray(data["tail"], dtype=np.float64))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CalibrationError):
                raise
            raise CalibrationError(f"not a calibration: {type(exc).__name__}: {exc}") from exc

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.as_dict(), separators=(",", ":")) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CalibrationError(f"cannot read {path}: {type(exc).__name__}") from exc
        return cls.from_dict(data)


def fmr_for_fpir(target: float, gallery_size: int) -> float:
    """The per-comparison FMR that gives `target` FPIR over `gallery_size` faces: 1 - (1 - target)^(1/N)."""
    return -math.expm1(math.log1p(-target) / gallery_size)


def fpir_for_fmr(fmr: float, gallery_size: int) -> float:
    return -math.expm1(gallery_size * math.log1p(-min(fmr, 1.0 - 1e-16)))


# Computing one ---------------------------------------------------------------
def calibrate(embeddings: np.ndarray, labels: Sequence[str], *, model_id: str, source: str) -> Calibration:
    """The calibration from unit embeddings (N x D) of labelled faces: every pair of different people."""
    counts, tail, count = impostor_summary(embeddings, labels)
    return Calibration(model_id=model_id, source=source, count=count, counts=counts, tail=tail)


def impostor_summary(embeddings: np.ndarray, labels: Sequence[str],
                     tail_size: int = TAIL_SIZE) -> tuple[np.ndarray, np.ndarray, int]:
    """(histogram counts, the tail_size highest scores, pair count) over all different-person pairs.

    In blocks, so a folder of 100k faces needs no N x N matrix in memory.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    codes = np.unique(np.asarray(labels), return_inverse=True)[1]
    counts = np.zeros(BINS, dtype=np.int64)
    tail = np.empty(0, dtype=np.float32)
    for start in range(0, len(x), _BLOCK):
        block = x[start:start + _BLOCK] @ x[start:].T  # this block against itself and everything after
        rows = np.arange(start, start + len(block))[:, None]
        cols = np.arange(start, len(x))[None, :]
        impostor = (cols > rows) & (codes[rows] != codes[cols])
        scores = block[impostor]
        counts += np.bincount(_bins(scores), minlength=BINS)
        tail = _top(np.concatenate([tail, scores]), tail_size)
    return counts, np.sort(tail)[::-1].astype(np.float64), int(counts.sum())


def impostor_scores(embeddings: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Every different-person pair's score (small sets only: tests and benchmarks)."""
    x = np.asarray(embeddings, dtype=np.float32)
    codes = np.unique(np.asarray(labels), return_inverse=True)[1]
    rows, cols = np.triu_indices(len(x), k=1)
    different = codes[rows] != codes[cols]
    return np.einsum("ij,ij->i", x[rows[different]], x[cols[different]])


def _bins(scores: np.ndarray) -> np.ndarray:
    return np.clip(np.floor((scores.astype(np.float64) + 1.0) / BIN_WIDTH), 0, BINS - 1).astype(np.int64)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    return scores if len(scores) <= k else np.partition(scores, len(scores) - k)[-k:]


# Where calibrations live ------------------------------------------------------
def calibration_paths(pack_folder: str | Path, pack: str, extra_folders: Sequence[str | Path] = ()) -> list[Path]:
    """Where a pack's calibration is looked for, in order: the configured folders
    (`<folder>/<pack>.calibration.json`, for packs on read-only storage), then the pack's own folder."""
    return [Path(folder) / f"{pack}.{FILE_NAME}" for folder in extra_folders] + [Path(pack_folder) / FILE_NAME]


def find_calibration(model_id: str, paths: Sequence[Path]) -> Calibration | None:
    """The first calibration among `paths` made for `model_id`; None if there is none.

    A file for another model id (the pack's files changed since it was made) is
    skipped with a warning: its scores say nothing about the new model.
    """
    for path in paths:
        if not path.is_file():
            continue
        try:
            calibration = Calibration.load(path)
        except CalibrationError as exc:
            logger.warning("ignoring unusable calibration %s: %s", path, exc)
            continue
        if calibration.model_id != model_id:
            logger.warning("ignoring calibration %s: made for %s, not %s", path, calibration.model_id, model_id)
            continue
        return calibration
    return None
