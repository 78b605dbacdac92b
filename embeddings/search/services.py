"""Search (1:N) and compare (1:1, 1:few): the engine, the store and the audit log together.

Timings are measured per stage so the API can show where a request's time
went (decode, detect + embed, vector search, decrypt + re-rank).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from uuid import UUID

import numpy as np

from audit.services import Actor, record_event
from embeddings.engine import AnalyzeOptions, decode_image
from embeddings.face_engine import face_engine
from embeddings.image_sources import ImageSource, fetch_bytes, image_limits
from embeddings.search.selectors import Match, SearchTimings, search_faces_many
from embeddings.store import rounding
from embeddings.store.collections import DEFAULT_COLLECTION, check_model, collection_named
from embeddings.store.models import Collection
from embeddings.store.selectors import stored_face
from faceservice.errors import ImageError, Unprocessable
from faceservice.tenancy import tenant_context


class NoFaceDetected(Unprocessable):
    code = "no_face_detected"
    default_message = "No face was found in the target image."


@dataclass(frozen=True)
class SearchQuery:
    top_k: int = 10
    threshold: float = 0.45  # the views pass SEARCH_MATCH_THRESHOLD
    largest_only: bool = False
    max_faces: int = 10
    subject_ids: list[str] | None = None
    asset_ids: list[str] | None = None
    group_by_subject: bool = False
    collection: str | None = None  # None: the default one (by face id: the face's own)


@dataclass
class SearchResult:
    model_id: str
    threshold: float
    collection: str = DEFAULT_COLLECTION
    faces: list[dict] = field(default_factory=list)
    left_out: list[dict] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"model_id": self.model_id, "collection": self.collection, "threshold": self.threshold,
                "faces": self.faces,
                "left_out": self.left_out, "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()}}


class Stopwatch:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + (now - self._last) * 1000
        self._last = now


def _best_per_subject(matches: list[Match], top_k: int) -> list[Match]:
    seen, kept = set(), []
    for match in matches:
        key = match.subject_id or f"face:{match.face_id}"
        if key not in seen:
            seen.add(key)
            kept.append(match)
    return kept[:top_k]


def _match_dict(match: Match) -> dict:
    return {"face_id": match.face_id, "asset_id": match.asset_id, "subject_id": match.subject_id,
            "similarity": rounding.score(match.similarity)}


def searched_collection(tenant_id: UUID | str, name: str | None, model_id: str) -> Collection:
    """The collection a request searches (404 if absent), refused if it holds another model's faces."""
    with tenant_context(tenant_id):
        collection = collection_named(tenant_id, name)
    check_model(collection, model_id)
    return collection


def _search_embeddings(tenant_id, embeddings: list[np.ndarray], model_id: str, query: SearchQuery,
                       timings: SearchTimings, collection_id: UUID,
                       exclude_face_id: UUID | None = None) -> list[list[Match]]:
    # Fetch more when grouping by subject, so grouping still fills top_k; one more
    # when a face is left out, so leaving it out still fills top_k.
    top_k = query.top_k * 5 if query.group_by_subject else query.top_k
    top_k += 1 if exclude_face_id is not None else 0
    results = search_faces_many(tenant_id=tenant_id, embeddings=embeddings, model_id=model_id, top_k=top_k,
                                threshold=query.threshold, subject_ids=query.subject_ids,
                                asset_ids=query.asset_ids, collection_id=collection_id, timings=timings)
    if exclude_face_id is not None:
        results = [[m for m in matches if str(m.face_id) != str(exclude_face_id)] for matches in results]
    if query.group_by_subject:
        return [_best_per_subject(matches, query.top_k) for matches in results]
    return [matches[:query.top_k] for matches in results]


def search_by_image(*, tenant_id: UUID, source: ImageSource, query: SearchQuery, actor: Actor) -> SearchResult:
    """Every face (or the largest) of the image, each with its best matches in the tenant."""
    engine = face_engine()  # loaded at process start; raises ModelsUnavailable (503) if missing
    collection = searched_collection(tenant_id, query.collection, engine.model_id)
    watch = Stopwatch()
    image = _decode(source)
    watch.lap("decode")
    options = AnalyzeOptions(max_faces=1 if query.largest_only else query.max_faces)
    analysis = engine.analyze(image, options)
    del image  # the pixels are not needed past this point
    watch.lap("detect_embed")
    result = SearchResult(model_id=engine.model_id, threshold=query.threshold, collection=collection.name)
    timings = SearchTimings()
    # All faces in one go: one tenant scope and one key lookup, then one vector query per face.
    found = _search_embeddings(tenant_id, [face.embedding for face in analysis.faces], engine.model_id, query,
                               timings, collection.id)
    for face, matches in zip(analysis.faces, found, strict=True):
        result.faces.append({"bbox": rounding.box(face.bbox), "det_score": rounding.score(face.det_score),
                             "matches": [_match_dict(m) for m in matches]})
    result.left_out = [{"bbox": rounding.box(f.bbox), "reason": f.reason}
                       for f in analysis.left_out]
    watch.lap("search")
    _audit_search(tenant_id, actor, result, source_kind=source.kind)
    result.timings_ms = _timings(watch, timings)
    return result


def search_by_face(*, tenant_id: UUID, face_id: UUID, query: SearchQuery, actor: Actor) -> SearchResult:
    """Faces like one already indexed, the face itself left out (it would always come first, at 1)."""
    watch = Stopwatch()
    face = stored_face(tenant_id=tenant_id, face_id=face_id)
    if query.collection is None:
        with tenant_context(tenant_id):
            collection = Collection.objects.get(tenant_id=tenant_id, id=face.collection_id)
    else:
        collection = searched_collection(tenant_id, query.collection, face.model_id)
    timings = SearchTimings()
    matches = _search_embeddings(tenant_id, [face.embedding], face.model_id, query, timings, collection.id,
                                 exclude_face_id=face_id)[0]
    watch.lap("search")
    result = SearchResult(model_id=face.model_id, threshold=query.threshold, collection=collection.name,
                          faces=[{"bbox": None, "det_score": None, "matches": [_match_dict(m) for m in matches]}])
    _audit_search(tenant_id, actor, result, source_kind="face_id", face_id=face_id)
    result.timings_ms = _timings(watch, timings)
    return result


def _timings(watch: Stopwatch, timings: SearchTimings) -> dict[str, float]:
    return {**watch.laps, "vector_search": timings.vector_search_ms, "rerank": timings.rerank_ms,
            **({"gallery_scan": timings.extra["gallery_scan_ms"]} if "gallery_scan_ms" in timings.extra else {})}


def _audit_search(tenant_id, actor: Actor, result: SearchResult, *, source_kind: str,
                  face_id: UUID | None = None) -> None:
    # That a search happened, by whom, how many faces and matches: never the image.
    record_event(tenant_id=tenant_id, actor=actor, action="faces.searched",
                 target={"face_id": str(face_id)} if face_id else {},
                 details={"source": source_kind, "query_faces": len(result.faces),
                          "matches": sum(len(f["matches"]) for f in result.faces)})


def _decode(source: ImageSource) -> np.ndarray:
    return decode_image(fetch_bytes(source), image_limits())


def _largest_face(source: ImageSource):
    """(faces found, embedding of the largest face or None)."""
    engine = face_engine()
    analysis = engine.analyze(_decode(source), AnalyzeOptions(max_faces=1))
    found = len(analysis.faces) + sum(1 for f in analysis.left_out if f.reason == "over_max_faces")
    return found, analysis.faces[0].embedding if analysis.faces else None


def compare(*, tenant_id: UUID, target: ImageSource, references: list[tuple[str, ImageSource]],
            threshold: float, actor: Actor) -> dict:
    """Largest face of the target against the largest face of each reference; nothing stored."""
    engine = face_engine()
    target_found, target_embedding = _largest_face(target)
    if target_embedding is None:
        raise NoFaceDetected()
    comparisons = []
    for name, source in references:
        try:
            found, embedding = _largest_face(source)
        except ImageError as exc:
            comparisons.append({"name": name, "similarity": None, "match": False, "faces_found": 0,
                                "error": exc.code})
            continue
        similarity = float(np.dot(target_embedding, embedding)) if embedding is not None else None
        comparisons.append({"name": name, "similarity": rounding.score(similarity) if similarity is not None else None,
                            "match": similarity is not None and similarity >= threshold,
                            "faces_found": found, "error": None if embedding is not None else "no_face_detected"})
    record_event(tenant_id=tenant_id, actor=actor, action="faces.compared",
                 details={"references": len(references),
                          "matches": sum(1 for c in comparisons if c["match"])})
    return {"model_id": engine.model_id, "threshold": threshold, "target_faces_found": target_found,
            "comparisons": comparisons}
