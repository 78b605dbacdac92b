"""Person search (1:N over subjects) and verification against a stored person (1:1), nothing stored.

A person search is a face search whose candidate faces are then scored per
subject (embeddings/search/persons.py: the aggregation, chosen by measurement
on LFW, docs/BENCHMARKS.md "Person search"). Verification compares the largest
face of a photo with every enrolled face of one subject, aggregated the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

import numpy as np
from django.conf import settings

from audit.services import Actor, record_event
from embeddings.engine import AnalyzeOptions
from embeddings.face_engine import face_engine
from embeddings.image_sources import ImageSource
from embeddings.search.persons import DEFAULT_METHOD, FaceCandidate, SubjectScore, rank_subjects
from embeddings.search.selectors import SearchTimings, search_faces_many
from embeddings.search.services import NoFaceDetected, Stopwatch, _decode, searched_collection
from embeddings.store import rounding
from embeddings.store.selectors import SubjectNotFound, subject_embeddings

# Candidate faces fetched per subject asked for: a subject's score needs its
# best faces among the candidates, not only its first.
FACES_PER_SUBJECT = 5


@dataclass(frozen=True)
class PersonQuery:
    top_k: int = 10
    threshold: float = 0.45  # the views pass SEARCH_MATCH_THRESHOLD
    largest_only: bool = False
    max_faces: int = 10
    collection: str | None = None


@dataclass
class PersonSearchResult:
    model_id: str
    collection: str
    threshold: float
    method: str = DEFAULT_METHOD
    faces: list[dict] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)


def _subject_dict(score: SubjectScore) -> dict:
    return {"subject_id": score.subject_id, "score": rounding.score(score.score), "faces": score.faces,
            "best_face_id": score.best_face_id, "best_similarity": rounding.score(score.best_similarity)}


def search_subjects_by_image(*, tenant_id: UUID, source: ImageSource, query: PersonQuery,
                             actor: Actor) -> PersonSearchResult:
    """Every face (or the largest) of the photo, each with the collection's subjects that look most like it."""
    engine = face_engine()
    collection = searched_collection(tenant_id, query.collection, engine.model_id)
    watch = Stopwatch()
    image = _decode(source)
    analysis = engine.analyze(image, AnalyzeOptions(max_faces=1 if query.largest_only else query.max_faces))
    del image
    watch.lap("detect_embed")
    embeddings = [face.embedding for face in analysis.faces]
    found = search_faces_many(tenant_id=tenant_id, embeddings=embeddings, model_id=engine.model_id,
                              top_k=min(query.top_k * FACES_PER_SUBJECT, 500), threshold=-1.0,
                              collection_id=collection.id, timings=SearchTimings())
    result = PersonSearchResult(model_id=engine.model_id, collection=collection.name, threshold=query.threshold)
    for face, matches in zip(analysis.faces, found, strict=True):
        candidates = [FaceCandidate(face_id=m.face_id, subject_id=m.subject_id, similarity=m.similarity)
                      for m in matches if m.subject_id is not None]
        ranked = [s for s in rank_subjects(candidates) if s.score >= query.threshold][:query.top_k]
        result.faces.append({"bbox": rounding.box(face.bbox), "det_score": rounding.score(face.det_score),
                             "subjects": [_subject_dict(s) for s in ranked]})
    watch.lap("search")
    record_event(tenant_id=tenant_id, actor=actor, action="subjects.searched",
                 details={"collection_id": str(collection.id), "source": source.kind,
                          "query_faces": len(result.faces),
                          "matches": sum(len(f["subjects"]) for f in result.faces)})
    result.timings_ms = {name: round(ms, 2) for name, ms in watch.laps.items()}
    return result


def verify_subject(*, tenant_id: UUID, source: ImageSource, subject_id: str, collection: str | None,
                   threshold: float | None, actor: Actor) -> dict:
    """Is the largest face of the photo this subject? Compared with each of its enrolled faces (1:1)."""
    engine = face_engine()
    target = searched_collection(tenant_id, collection, engine.model_id)
    analysis = engine.analyze(_decode(source), AnalyzeOptions(max_faces=1))
    if not analysis.faces:
        raise NoFaceDetected()
    face_ids, enrolled, _ = subject_embeddings(tenant_id=tenant_id, collection_id=target.id, subject_id=subject_id)
    if not face_ids:
        raise SubjectNotFound()
    similarities = enrolled @ np.asarray(analysis.faces[0].embedding, dtype=np.float32)
    candidates = [FaceCandidate(face_id=face_id, subject_id=subject_id, similarity=float(similarity))
                  for face_id, similarity in zip(face_ids, similarities, strict=True)]
    (score,) = rank_subjects(candidates)
    threshold = settings.FACE_MATCH_THRESHOLD if threshold is None else threshold
    match = score.score >= threshold
    record_event(tenant_id=tenant_id, actor=actor, action="subject.verified",
                 target={"collection_id": str(target.id), "subject_id": subject_id},
                 details={"faces_compared": len(face_ids), "match": match})
    return {"model_id": engine.model_id, "collection": target.name, "subject_id": subject_id,
            "score": rounding.score(score.score), "match": match, "threshold": threshold,
            "method": DEFAULT_METHOD, "faces_compared": len(face_ids),
            "best_face_id": score.best_face_id, "best_similarity": rounding.score(score.best_similarity)}
