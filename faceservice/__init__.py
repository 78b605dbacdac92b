import os

# Before anything imports NumPy: one BLAS thread per process. The projection
# matrix's QR took ~10 s with two OpenBLAS threads on a busy 2-core box against
# ~0.4 s with one (docs/BENCHMARKS.md); web and worker processes scale by process.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# Nothing else here: the face engine (no Django) imports faceservice.errors, and
# importing any faceservice module runs this file first. The Celery app is
# loaded by FaceserviceConfig.ready() (apps.py) instead.
