"""The face engine in a child process (embeddings/engine/model_process.py), on real models and photos."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

from embeddings.engine import AnalyzeOptions, ModelsUnavailable
from embeddings.engine.model_process import ModelProcess

from .conftest import FACES, engine_config, load_photo, needs_shared

pytestmark = needs_shared

PHOTO = FACES / "group-photos" / "000_5.jpg"


@pytest.fixture
def model_process():
    process = ModelProcess(engine_config(640))
    yield process
    process.close()


def test_the_child_answers_what_the_engine_answers(model_process, engine):
    image = load_photo(PHOTO)
    options = AnalyzeOptions(max_faces=3)
    here, there = engine.analyze(image, options), model_process.analyze(image, options)
    assert (model_process.model_id, model_process.dimension) == (engine.model_id, engine.dimension)
    assert len(there.faces) == len(here.faces) == 3 and there.left_out == here.left_out
    for a, b in zip(here.faces, there.faces, strict=True):
        assert a.bbox == b.bbox and np.array_equal(a.embedding, b.embedding)


def test_an_error_in_the_child_is_raised_in_the_parent_and_the_child_goes_on(model_process):
    with pytest.raises(ValueError, match="BGR uint8"):
        model_process.analyze(np.zeros((10, 10), dtype=np.float32))
    assert len(model_process.analyze(load_photo(PHOTO)).faces) == 5


def test_a_child_that_died_between_images_is_started_again(model_process):
    model_process.analyze(load_photo(PHOTO))
    child = model_process._child
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert len(model_process.analyze(load_photo(PHOTO)).faces) == 5
    assert model_process._child.pid != child.pid


def test_a_child_that_dies_during_an_image_fails_it_as_transient(model_process):
    image = load_photo(PHOTO)
    model_process.analyze(image)
    child = model_process._child
    os.kill(child.pid, signal.SIGSTOP)  # alive but not reading: the call below waits on it
    failure: list[BaseException] = []

    def call():
        try:
            model_process.analyze(image)
        except BaseException as exc:
            failure.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    caller.join(timeout=0.5)
    assert caller.is_alive()  # still waiting for the stopped child
    os.kill(child.pid, signal.SIGKILL)
    caller.join(timeout=10)
    assert len(failure) == 1 and isinstance(failure[0], ModelsUnavailable)
    assert failure[0].code == "models_unavailable"
    assert len(model_process.analyze(image).faces) == 5  # and the next image starts a new child


def test_close_ends_the_child(model_process):
    model_process.analyze(load_photo(PHOTO))
    child = model_process._child
    model_process.close()
    assert child.poll() is not None
