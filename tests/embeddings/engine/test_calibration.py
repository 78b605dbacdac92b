"""Calibration: round trips, thresholds monotone in the gallery size, FMR held on held-out pairs.

The held-out check uses real faces: 200 LFW dev-train people embedded at 320
(a few seconds), calibrated on half of them and checked on the other half.
The tail's extrapolation is checked on random unit vectors, whose cosine
distribution is known in closed form.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from embeddings.engine.calibration import (
    Calibration,
    CalibrationError,
    calibrate,
    calibration_paths,
    find_calibration,
    fmr_for_fpir,
    fpir_for_fmr,
    impostor_scores,
)
from embeddings.engine.labelled import embed_people, people_photos
from tests.embeddings.engine.conftest import FACES, needs_shared

LFW = FACES / "lfw-devtrain"


def _random_calibration(n: int = 2000, dim: int = 64, seed: int = 3) -> tuple[Calibration, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = [str(i) for i in range(n)]  # everyone a different person
    return calibrate(x, labels, model_id="test:00000000", source="random"), x


@pytest.fixture(scope="module")
def random_calibration():
    return _random_calibration()[0]


@pytest.mark.pure
def test_counts_every_different_person_pair_once():
    x = np.zeros((4, 3), dtype=np.float32)
    x[:3, 0] = 1.0  # three photos alike: two of person a, one of b
    x[3, 1] = 1.0  # c, unlike anyone
    scores = impostor_scores(x, ["a", "a", "b", "c"])
    # a-a is no impostor pair; a-b twice (score 1), a-c twice and b-c (score 0).
    assert sorted(scores.round(3).tolist()) == [0, 0, 0, 1, 1]
    calibration_counts = calibrate(np.repeat(np.eye(40, dtype=np.float32), 1, axis=0), [str(i) for i in range(40)],
                                   model_id="m", source="s").count
    assert calibration_counts == 40 * 39 // 2


@pytest.mark.pure
def test_round_trip_through_json(tmp_path, random_calibration):
    path = random_calibration.save(tmp_path / "calibration.json")
    loaded = Calibration.load(path)
    assert (loaded.model_id, loaded.source, loaded.count) == ("test:00000000", "random", 2000 * 1999 // 2)
    for score in (-0.2, 0.0, 0.1, 0.3, 0.45, 0.6, 0.9):
        assert loaded.false_match_rate(score) == pytest.approx(random_calibration.false_match_rate(score), rel=1e-6)
    for fmr in (0.1, 1e-3, 1e-6):
        assert loaded.threshold_for_fmr(fmr) == pytest.approx(random_calibration.threshold_for_fmr(fmr), abs=1e-6)
    data = json.loads(path.read_text())
    assert data["model_id"] == "test:00000000" and data["format"] == 1


@pytest.mark.pure
def test_fmr_is_never_zero_and_falls_with_the_score(random_calibration):
    scores = np.linspace(-1, 1, 401)
    rates = [random_calibration.false_match_rate(s) for s in scores]
    assert all(r > 0 for r in rates)
    assert all(a >= b for a, b in itertools.pairwise(rates))
    assert random_calibration.false_match_rate(-1.0) == pytest.approx(1.0)


@pytest.mark.pure
def test_thresholds_invert_fmr(random_calibration):
    for fmr in (0.5, 0.1, 1e-2, 1e-3, 1e-4, 1e-6, 1e-9):
        threshold = random_calibration.threshold_for_fmr(fmr)
        assert random_calibration.false_match_rate(threshold) == pytest.approx(fmr, rel=0.02)


@pytest.mark.pure
def test_threshold_for_fpir_grows_with_the_gallery(random_calibration):
    sizes = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000]
    thresholds = [random_calibration.threshold_for_fpir(0.01, n) for n in sizes]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == len(thresholds)
    for n, t in zip(sizes, thresholds, strict=True):
        assert random_calibration.fpir(t, n) == pytest.approx(0.01, rel=0.03)
    # A stricter target asks for a higher threshold.
    assert random_calibration.threshold_for_fpir(0.001, 1000) > random_calibration.threshold_for_fpir(0.01, 1000)


@pytest.mark.pure
def test_fpir_formula():
    assert fpir_for_fmr(fmr_for_fpir(0.01, 1000), 1000) == pytest.approx(0.01)
    assert fmr_for_fpir(0.01, 1) == pytest.approx(0.01)
    assert fmr_for_fpir(0.01, 1000) == pytest.approx(1 - 0.99 ** (1 / 1000))


@pytest.mark.pure
def test_tail_extrapolates_random_vectors():
    """Cosine of random unit vectors in d dimensions: (1 + c)/2 ~ Beta((d-1)/2, (d-1)/2).
    Calibrated on 2,000 vectors (2 M pairs), the fitted exponential tail errs on the safe side (the
    threshold's true FMR is never above the one asked for) and stays within a factor of 5 down to
    1e-6, where two pairs in 2 M would have been seen. Further out it grows more cautious than a
    light (Gaussian-like) tail needs: at 1e-8 the true FMR is ~300 times lower."""
    from scipy.stats import beta

    calibration, _ = _random_calibration()
    half = (64 - 1) / 2
    for fmr, most_cautious in ((1e-4, 1.5), (1e-5, 2), (1e-6, 5), (1e-8, 1000)):
        threshold = calibration.threshold_for_fmr(fmr)
        truth = float(beta.sf((1 + threshold) / 2, half, half))
        assert fmr / most_cautious <= truth <= fmr, (fmr, threshold, truth)


@pytest.mark.pure
def test_refuses_too_few_scores():
    x = np.eye(5, dtype=np.float32)
    with pytest.raises(CalibrationError):
        calibrate(x, list("abcde"), model_id="m", source="s")
    with pytest.raises(CalibrationError):
        Calibration.from_dict({"format": 99})


@pytest.mark.pure
def test_find_calibration_prefers_the_configured_folder_and_checks_the_model(tmp_path, random_calibration):
    pack = tmp_path / "pack"
    extra = tmp_path / "calibrations"
    pack.mkdir(), extra.mkdir()
    paths = calibration_paths(pack, "mypack", [extra])
    assert paths == [extra / "mypack.calibration.json", pack / "calibration.json"]
    assert find_calibration("test:00000000", paths) is None
    random_calibration.save(pack / "calibration.json")
    assert find_calibration("test:00000000", paths).model_id == "test:00000000"
    assert find_calibration("test:ffffffff", paths) is None  # made for another model: skipped
    (extra / "mypack.calibration.json").write_text("{not json")
    assert find_calibration("test:00000000", paths) is not None  # unreadable: skipped, the next one used


@pytest.fixture(scope="module")
def lfw_faces(engine320):
    if not LFW.is_dir():
        pytest.skip(f"{LFW} is missing")
    people = dict(list(people_photos(LFW).items())[:400])
    return embed_people(engine320, people, threads=2)


@pytest.mark.pure
@needs_shared
def test_fmr_holds_on_held_out_people(lfw_faces):
    """Calibrated on 200 people, the FMR asked for is what 200 other people's pairs show."""
    people = sorted({f.person for f in lfw_faces})
    first = set(people[::2])
    part = [f for f in lfw_faces if f.person in first]
    held = [f for f in lfw_faces if f.person not in first]
    calibration = calibrate(np.stack([f.embedding for f in part]), [f.person for f in part],
                            model_id="lfw", source="lfw half")
    scores = impostor_scores(np.stack([f.embedding for f in held]), [f.person for f in held])
    assert len(scores) > 50_000
    for fmr, tolerance in ((1e-1, 0.1), (1e-2, 0.25), (3e-3, 0.4)):
        measured = float(np.mean(scores >= calibration.threshold_for_fmr(fmr)))
        assert abs(math.log(measured / fmr)) < math.log(1 + tolerance) * 1.5, (fmr, measured)


@needs_shared
def test_the_command_writes_a_calibration_for_the_installed_pack(tmp_path, settings):
    """calibrate_model_pack on 40 LFW people (linked, not copied, into a temporary folder)."""
    from django.core.management import call_command

    from embeddings.face_engine import face_engine

    photos = tmp_path / "photos"
    for person in sorted(p for p in LFW.iterdir() if p.is_dir())[:40]:
        (photos / person.name).mkdir(parents=True)
        for image in person.iterdir():
            (photos / person.name / image.name).symlink_to(image)
    output = tmp_path / "out.json"
    call_command("calibrate_model_pack", "--photos", str(photos), "--output", str(output))
    calibration = Calibration.load(output)
    assert calibration.model_id == face_engine().model_id and calibration.count > 1000
    assert Path(output).stat().st_size < 100_000
