"""The face engine (embeddings/engine), match thresholds and the face store."""

from pathlib import Path

from pydantic import Field

from faceservice.settings.environment import Variables, export, read, shown


class Faces(Variables):
    """Face engine and face store"""

    FACE_MODEL_ROOT: str = Field(
        str(Path.home() / ".insightface"), json_schema_extra=shown("`~/.insightface` (`/models` in the image)"),
        description="folder holding model packs")
    FACE_MODEL_PACK: str = Field("buffalo_l", description="the pack's folder name")
    FACE_DEVICE: str = Field(
        "cpu", description="`cpu`, `cuda` or `auto` (CUDA needs an image with `onnxruntime-gpu`)")
    # One onnxruntime thread per process by default: its pool of one thread per core
    # keeps spinning after each call and doubled a search's CPU on a shared box
    # (docs/BENCHMARKS.md, "Search latency"). Scale by processes.
    FACE_MODEL_THREADS: int = Field(
        1, description="onnxruntime intra-op threads per process (0: onnxruntime decides). One thread per "
        "process and more processes serve more searches than one process with a thread per core: the idle "
        "pool keeps spinning and competes with PostgreSQL (docs/BENCHMARKS.md, \"Search latency\")")
    FACE_DET_SIZE: int = Field(640, description="detector input size")
    # A pack on read-only storage cannot hold its calibration: this folder's
    # `<pack>.calibration.json` is read first (`manage.py calibrate_model_pack`
    # writes one; docs/MODELS.md). The repository ships the test pack's.
    FACE_CALIBRATION_DIR: str = Field(
        str(Path(__file__).resolve().parents[2] / "deploy" / "calibrations"),
        json_schema_extra=shown("`deploy/calibrations/` of the code"),
        description="folder of model-pack calibrations (`<pack>.calibration.json`), read before the pack's own "
        "`calibration.json`; the impostor scores that calibrated thresholds come from")
    # 0.35 sits above the highest different-person score measured for the test pack
    # (0.309) and keeps TAR@FAR=1e-3 near 98 % (see docs/MODELS.md).
    FACE_MATCH_THRESHOLD: float = Field(
        0.35, description="cosine similarity at which compare (1:1) calls two faces the same person; "
        "calibrate per pack")
    # Higher than the 1:1 point: against a gallery of N people the chance that some
    # stranger clears a threshold grows with N. On LFW dev-train (804 people, the
    # test pack) 0.35 gave 43 % of non-enrolled people a wrong match, 0.45 gave
    # 1.4 % and still identified 92 % of the enrolled ones (docs/BENCHMARKS.md,
    # "Identification accuracy").
    SEARCH_MATCH_THRESHOLD: float = Field(
        0.45, description="default minimum similarity of a search (1:N) match: higher than the 1:1 point "
        "because a larger gallery holds more look-alikes; calibrate per pack and gallery size")
    # The default decision of a search (1:N) and a person search: the threshold
    # follows from the pack's calibration and the number of faces (subjects)
    # searched, FPIR = 1 - (1 - FMR(t))^N, so the chance that a stranger gets a
    # wrong match stays at this rate whatever the gallery's size (issue #16; the
    # fixed 0.45 drifted from 1.4 % to 8.6 % between 804 and 2,900 people).
    SEARCH_TARGET_FPIR: float = Field(
        0.01, gt=0, lt=1, description="default target false-positive identification rate of a search: the "
        "chance that a person who is not in the collection gets a match. With the pack's calibration the "
        "threshold follows from it and the gallery size; a pack without one uses SEARCH_MATCH_THRESHOLD")
    # Counting stops here: a count of 1M index entries costs ~0.1 s once a minute
    # per collection (cached); above it the threshold is that of a gallery of this
    # size, which the answer's gallery_size says.
    SEARCH_GALLERY_COUNT_MAX: int = Field(
        1_000_000, ge=1, description="gallery sizes are counted up to this many faces (or subjects) for the "
        "calibrated threshold; a larger gallery is taken as this size (cached 60 s per collection)")
    PROJECTION_CACHE_MAX_ENTRIES: int = Field(
        256, description="tenants' projection matrices cached per process (d·d·4 bytes each: 1 MiB at 512-d)")
    DELETE_SYNC_MAX_FACES: int = Field(
        10000, description="deletions matching more faces run in a worker (202 + `/v1/deletions/<id>`)")
    # Rekognition's users hold at most 100 faces; a person with more photos gains
    # little (the best few faces decide a match) and costs every search.
    SUBJECT_MAX_FACES: int = Field(
        100, ge=1, description="faces one subject may hold in a collection; more is refused with "
        "`subject_face_limit`")


export(read(Faces), globals())
