"""The face engine in a process of its own, fed decoded images through a pipe.

An index worker runs fetch, decode and store in Python threads beside the
model. onnxruntime releases the GIL while it computes, but the model's own
Python (pre- and post-processing, between onnxruntime calls) still waits for
the GIL behind those threads, and a worker process ran ~10 % slower than the
bare engine (docs/BENCHMARKS.md, "Indexing"). Here the model has an
interpreter to itself: the worker's threads hand it decoded images and get
the Analysis back. Celery's prefork children are daemonic and may not use
multiprocessing, so this is a plain subprocess speaking length-prefixed
pickles on its stdin and stdout, private to its parent (never a socket).

Images cross the pipe in memory only. If the parent dies the child reads end
of file (and, on Linux, gets SIGKILL from the kernel) and exits. Pure Python:
no Django here or in the child.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from typing import Any, BinaryIO

import numpy as np

from .config import EngineConfig
from .errors import ModelsUnavailable

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("!Q")


def _send(stream: BinaryIO, value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: BinaryIO) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)  # noqa: S301 - our own child process, over a private pipe


class ModelProcess:
    """A FaceEngine in a child process: the same analyze(), model_id and dimension.

    One caller at a time (a lock keeps it so); started on first use and again
    after the child died, which fails the image in flight with ModelsUnavailable
    (transient: the asset is retried).
    """

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._child: subprocess.Popen | None = None
        self.model_id = ""
        self.dimension = 0

    def analyze(self, image: np.ndarray, options=None):
        with self._lock:
            child = self._started()
            try:
                _send(child.stdin, ("analyze", image, options))
                status, value = _receive(child.stdout)
            except (EOFError, OSError, pickle.UnpicklingError) as exc:
                self._stop()
                raise ModelsUnavailable("the model process stopped; the image will be tried again") from exc
        if status == "error":
            raise value
        return value

    def start(self) -> None:
        """Start the child and load the models now, not at the first image."""
        with self._lock:
            self._started()

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _started(self) -> subprocess.Popen:
        if self._child is not None and self._child.poll() is None:
            return self._child
        self._stop()
        child = subprocess.Popen(
            [sys.executable, "-m", "embeddings.engine.model_process", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=_project_root(), close_fds=True)
        try:
            _send(child.stdin, self.config)
            status, value = _receive(child.stdout)
        except (EOFError, OSError) as exc:
            child.kill()
            raise ModelsUnavailable("the model process did not start") from exc
        if status == "error":
            child.kill()
            raise value
        self.model_id, self.dimension = value
        self._child = child
        return child

    def _stop(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        try:
            child.stdin.close()  # the child's signal to finish
            child.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            child.kill()
            child.wait()
        finally:
            child.stdout.close()


def _project_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when the parent dies (Linux), even mid-image.

    Strictly: when the parent's thread that started it ends. The index
    pipeline's model thread lives as long as its process, and a process
    started again from another thread is simply started again on demand.
    """
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere: end of file on stdin ends the loop
    if os.getppid() != parent_pid:
        os._exit(0)  # the parent died before prctl


def _serve(requests: BinaryIO, answers: BinaryIO) -> None:
    from .engine import get_engine

    config = _receive(requests)
    try:
        engine = get_engine(config)
    except Exception as exc:  # noqa: BLE001 - handed to the parent, which raises it
        _send(answers, ("error", _portable(exc)))
        return
    _send(answers, ("ok", (engine.model_id, engine.dimension)))
    while True:
        try:
            _, image, options = _receive(requests)
        except EOFError:
            return
        try:
            answer = ("ok", engine.analyze(image, options))
        except Exception as exc:  # noqa: BLE001 - the parent classifies it (bad image, etc.)
            answer = ("error", _portable(exc))
        del image
        _send(answers, answer)


def _portable(exc: Exception) -> Exception:
    """The exception itself if it survives pickling (ours do), else a RuntimeError saying what it was."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__name__} in the model process")


def main() -> None:
    _die_with_parent(int(sys.argv[1]))
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    # Nothing else may write to the answers pipe: anything printed goes to stderr.
    sys.stdout = io.TextIOWrapper(os.fdopen(os.dup(2), "wb"), write_through=True)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    _serve(requests, answers)


if __name__ == "__main__":
    main()
