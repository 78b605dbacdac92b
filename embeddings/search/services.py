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
from embeddings.engine.engine import LeftOutFace
from embeddings.engine.quality import NONE
from embeddings.face_engine import face_engine
from embeddings.image_sources import ImageSource, fetch_bytes, image_limits
from embeddings.search.selectors import Match, SearchTimings, gallery_size, search_faces_many
from embeddings.search.thresholds import Decision, identification_threshold, verification_threshold
from embeddings.store import rounding
from embeddings.store.collections import DEFAULT_COLLECTION, check_model, collection_named
from embeddings.store.face_quality import shown_quality
from embeddings.store.models import Collection
from embeddings.store.selectors import stored_face
from faceservice import metrics
from faceservice.errors import ImageError, Unprocessable
from faceservice.tenancy import tenant_context


class NoFaceDetected(Unprocessable):
    code = "no_face_detected"
    default_message = "No face was found in the target image."


@dataclass(frozen=True)
class SearchQuery:
    top_k: int = 10
    threshold: float | None = None  # a fixed threshold; None: decided by target_fpir (thresholds.py)
    target_fpir: float | None = None  # None: SEARCH_TARGET_FPIR
    quality_filter: str = NONE  # query faces below this bar are left out (engine/quality.py)
    largest_only: bool = False
    max_faces: int = 10
    subject_ids: list[str] | None = None
    asset_ids: list[str] | None = None
    group_by_subject: bool = False
    collection: str | None = None  # None: the default one (by face id: the face's own)


@dataclass
class SearchResult:
    model_id: str
    decision: Decision
    collection: str = DEFAULT_COLLECTION
    quality_filter: str = NONE
    faces: list[dict] = field(default_factory=list)
    left_out: list[dict] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def threshold(self) -> float:
        return self.decision.threshold

    def as_dict(self) -> dict:
        return {"model_id": self.model_id, "collection": self.collection, **decision_dict(self.decision),
                "quality_filter": self.quality_filter, "faces": self.faces,
                "left_out": self.left_out, "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()}}


def decision_dict(decision: Decision) -> dict:
    """How a 1:N answer says what decided a match (SearchOutput's fields)."""
    return {"threshold": decision.threshold, "threshold_source": decision.source,
            "target_fpir": decision.target_fpir, "gallery_size": decision.gallery_size}


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


def _match_dict(match: Match, decision: Decision) -> dict:
    return {"face_id": match.face_id, "asset_id": match.asset_id, "subject_id": match.subject_id,
            "similarity": rounding.score(match.similarity),
            "false_match_rate": decision.false_match_rate(match.similarity)}


def left_out_dict(face: LeftOutFace) -> dict:
    """A query face that was not searched, and why (the reason, its quality and pose)."""
    return {"bbox": rounding.box(face.bbox), "det_score": rounding.score(face.det_score),
            "size": round(float(face.size), rounding.BOX_DECIMALS), "reason": face.reason,
            **shown_quality(face.quality)}


def search_decision(tenant_id: UUID | str, collection_id: UUID, model_id: str, query: SearchQuery,
                    timings: SearchTimings, *, excluded: int = 0) -> Decision:
    """The request's threshold, or the one its target FPIR gives for the faces it searches.

    Made after the candidate search: its statements read the tenant's gallery
    generation (timings.generation), which tells whether a cached gallery size still holds.
    """
    def size() -> int:
        with tenant_context(tenant_id):
            counted = gallery_size(tenant_id=tenant_id, collection_id=collection_id, model_id=model_id,
                                   subject_ids=query.subject_ids, asset_ids=query.asset_ids,
                                   generation=timings.generation)
        return counted - excluded

    return identification_threshold(model_id=model_id, threshold=query.threshold, target_fpir=query.target_fpir,
                                    gallery_size=size)


def searched_collection(tenant_id: UUID | str, name: str | None, model_id: str) -> Collection:
    """The collection a request searches (404 if absent), refused if it holds another model's faces."""
    with tenant_context(tenant_id):
        collection = collection_named(tenant_id, name)
    check_model(collection, model_id)
    return collection


def _search_embeddings(tenant_id, embeddings: list[np.ndarray], model_id: str, query: SearchQuery,
                       timings: SearchTimings, collection_id: UUID,
                       exclude_face_id: UUID | None = None) -> list[list[Match]]:
    """Each query face's best matches, whatever their similarity: the caller applies its threshold
    (`_passing`). Best first, so cutting to top_k before or after the threshold keeps the same ones."""
    # Fetch more when grouping by subject, so grouping still fills top_k; one more
    # when a face is left out, so leaving it out still fills top_k.
    top_k = query.top_k * 5 if query.group_by_subject else query.top_k
    top_k += 1 if exclude_face_id is not None else 0
    results = search_faces_many(tenant_id=tenant_id, embeddings=embeddings, model_id=model_id, top_k=top_k,
                                threshold=-1.0, subject_ids=query.subject_ids,
                                asset_ids=query.asset_ids, collection_id=collection_id, timings=timings)
    if exclude_face_id is not None:
        results = [[m for m in matches if str(m.face_id) != str(exclude_face_id)] for matches in results]
    if query.group_by_subject:
        return [_best_per_subject(matches, query.top_k) for matches in results]
    return [matches[:query.top_k] for matches in results]


def _passing(matches: list[Match], decision: Decision) -> list[Match]:
    return [match for match in matches if match.similarity >= decision.threshold]


def search_by_image(*, tenant_id: UUID, source: ImageSource, query: SearchQuery, actor: Actor) -> SearchResult:
    """Every face (or the largest) of the image, each with its best matches in the tenant."""
    engine = face_engine()  # loaded at process start; raises ModelsUnavailable (503) if missing
    collection = searched_collection(tenant_id, query.collection, engine.model_id)
    watch = Stopwatch()
    image = _decode(source)
    watch.lap("decode")
    options = AnalyzeOptions(max_faces=1 if query.largest_only else query.max_faces,
                             quality_filter=query.quality_filter)
    analysis = engine.analyze(image, options)
    del image  # the pixels are not needed past this point
    watch.lap("detect_embed")
    timings = SearchTimings()
    # All faces in one go: one tenant scope and one key lookup, then one vector query per face.
    found = _search_embeddings(tenant_id, [face.embedding for face in analysis.faces], engine.model_id, query,
                               timings, collection.id)
    decision = search_decision(tenant_id, collection.id, engine.model_id, query, timings)
    result = SearchResult(model_id=engine.model_id, decision=decision, collection=collection.name,
                          quality_filter=query.quality_filter)
    for face, matches in zip(analysis.faces, found, strict=True):
        result.faces.append({"bbox": rounding.box(face.bbox), "det_score": rounding.score(face.det_score),
                             **shown_quality(face.quality),
                             "matches": [_match_dict(m, decision) for m in _passing(matches, decision)]})
    result.left_out = [left_out_dict(f) for f in analysis.left_out]
    watch.lap("search")
    _audit_search(tenant_id, actor, result, source_kind=source.kind)
    result.timings_ms = _timings(watch, timings)
    metrics.observe_search_stages(result.timings_ms, strategy=timings.strategy)
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
    # The face itself is not searched: one fewer in the gallery when it is in the one searched.
    excluded = 1 if face.collection_id == collection.id else 0
    found = _search_embeddings(tenant_id, [face.embedding], face.model_id, query, timings, collection.id,
                               exclude_face_id=face_id)[0]
    decision = search_decision(tenant_id, collection.id, face.model_id, query, timings, excluded=excluded)
    matches = _passing(found, decision)
    watch.lap("search")
    # The query is a stored face: its quality is the one measured when it was indexed.
    result = SearchResult(model_id=face.model_id, decision=decision, collection=collection.name,
                          quality_filter=query.quality_filter,
                          faces=[{"bbox": None, "det_score": None, **shown_quality(face.quality),
                                  "matches": [_match_dict(m, decision) for m in matches]}])
    _audit_search(tenant_id, actor, result, source_kind="face_id", face_id=face_id)
    result.timings_ms = _timings(watch, timings)
    metrics.observe_search_stages(result.timings_ms, strategy=timings.strategy)
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
            threshold: float | None = None, max_false_match_rate: float | None = None, actor: Actor) -> dict:
    """Largest face of the target against the largest face of each reference; nothing stored.

    The threshold: `threshold` if given, else the one `max_false_match_rate` gives
    (the pack's calibration), else FACE_MATCH_THRESHOLD (thresholds.verification_threshold).
    """
    engine = face_engine()
    decision = verification_threshold(model_id=engine.model_id, threshold=threshold,
                                      max_false_match_rate=max_false_match_rate)
    target_found, target_embedding = _largest_face(target)
    if target_embedding is None:
        raise NoFaceDetected()
    comparisons = []
    for name, source in references:
        try:
            found, embedding = _largest_face(source)
        except ImageError as exc:
            comparisons.append({"name": name, "similarity": None, "false_match_rate": None, "match": False,
                                "faces_found": 0, "error": exc.code})
            continue
        similarity = float(np.dot(target_embedding, embedding)) if embedding is not None else None
        comparisons.append({"name": name, "similarity": rounding.score(similarity) if similarity is not None else None,
                            "false_match_rate": decision.false_match_rate(similarity),
                            "match": similarity is not None and similarity >= decision.threshold,
                            "faces_found": found, "error": None if embedding is not None else "no_face_detected"})
    record_event(tenant_id=tenant_id, actor=actor, action="faces.compared",
                 details={"references": len(references),
                          "matches": sum(1 for c in comparisons if c["match"])})
    return {"model_id": engine.model_id, **verification_dict(decision), "target_faces_found": target_found,
            "comparisons": comparisons}


def verification_dict(decision: Decision) -> dict:
    """How a 1:1 answer says what decided a match (compare's and verify's fields)."""
    return {"threshold": decision.threshold, "threshold_source": decision.source,
            "max_false_match_rate": decision.max_false_match_rate}
