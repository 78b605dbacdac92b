"""Person search (1:N over subjects) and verification against a stored person (1:1), nothing stored.

A person search is a face search whose candidate faces are then scored per
subject (embeddings/search/persons.py: the aggregation, chosen by measurement
on LFW, docs/BENCHMARKS.md "Person search"). Verification compares the largest
face of a photo with every enrolled face of one subject, aggregated the same way.

Decisions (embeddings/search/thresholds.py): a person search's calibrated
threshold counts N as the collection's subjects, not their faces. FPIR is the
chance that a stranger is named as someone, and there are N someones; a
subject's faces are photos of one person, so a stranger's scores against them
are far from independent chances (counting faces would make a person with 100
photos weigh like 100 strangers). With one face per subject both counts are the
same. With the "max" aggregation a subject of many faces still gives a stranger
a few more chances than one face does, so the real FPIR can sit somewhat above
the target there: re-measure with bench/bench_person_search.py when subjects
hold many faces. Each subject's `false_match_rate` is the calibration's at its
score, which is a face similarity under "max" (persons.DEFAULT_METHOD).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

import numpy as np

from audit.services import Actor, record_event
from embeddings.engine import AnalyzeOptions
from embeddings.engine.quality import NONE
from embeddings.face_engine import face_engine
from embeddings.image_sources import ImageSource
from embeddings.search.persons import DEFAULT_METHOD, FaceCandidate, SubjectScore, rank_subjects
from embeddings.search.selectors import SearchTimings, search_faces_many, subject_count
from embeddings.search.services import (
    NoFaceDetected,
    Stopwatch,
    _decode,
    decision_dict,
    left_out_dict,
    searched_collection,
    verification_dict,
)
from embeddings.search.thresholds import Decision, identification_threshold, verification_threshold
from embeddings.store import rounding
from embeddings.store.face_quality import shown_quality
from embeddings.store.selectors import SubjectNotFound, subject_embeddings
from faceservice import metrics
from faceservice.tenancy import tenant_context

# Candidate faces fetched per subject asked for: a subject's score needs its
# best faces among the candidates, not only its first.
FACES_PER_SUBJECT = 5


@dataclass(frozen=True)
class PersonQuery:
    top_k: int = 10
    threshold: float | None = None  # a fixed threshold; None: decided by target_fpir over the subjects
    target_fpir: float | None = None  # None: SEARCH_TARGET_FPIR
    quality_filter: str = NONE
    largest_only: bool = False
    max_faces: int = 10
    collection: str | None = None


@dataclass
class PersonSearchResult:
    model_id: str
    collection: str
    decision: Decision
    quality_filter: str = NONE
    method: str = DEFAULT_METHOD
    faces: list[dict] = field(default_factory=list)
    left_out: list[dict] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"model_id": self.model_id, "collection": self.collection, **decision_dict(self.decision),
                "quality_filter": self.quality_filter, "method": self.method, "faces": self.faces,
                "left_out": self.left_out, "timings_ms": self.timings_ms}


def _subject_dict(score: SubjectScore, decision: Decision) -> dict:
    return {"subject_id": score.subject_id, "score": rounding.score(score.score),
            "false_match_rate": decision.false_match_rate(score.score), "faces": score.faces,
            "best_face_id": score.best_face_id, "best_similarity": rounding.score(score.best_similarity)}


def person_decision(tenant_id: UUID, collection_id: UUID, model_id: str, query: PersonQuery,
                    timings: SearchTimings) -> Decision:
    """The request's threshold, or the one its target FPIR gives for the collection's subjects (module doc).

    Made after the candidate search, whose statements read the gallery generation (timings.generation).
    """
    def size() -> int:
        with tenant_context(tenant_id):
            return subject_count(tenant_id=tenant_id, collection_id=collection_id, model_id=model_id,
                                 generation=timings.generation)

    return identification_threshold(model_id=model_id, threshold=query.threshold, target_fpir=query.target_fpir,
                                    gallery_size=size)


def search_subjects_by_image(*, tenant_id: UUID, source: ImageSource, query: PersonQuery,
                             actor: Actor) -> PersonSearchResult:
    """Every face (or the largest) of the photo, each with the collection's subjects that look most like it."""
    engine = face_engine()
    collection = searched_collection(tenant_id, query.collection, engine.model_id)
    watch = Stopwatch()
    image = _decode(source)
    analysis = engine.analyze(image, AnalyzeOptions(max_faces=1 if query.largest_only else query.max_faces,
                                                    quality_filter=query.quality_filter))
    del image
    watch.lap("detect_embed")
    embeddings = [face.embedding for face in analysis.faces]
    timings = SearchTimings()
    found = search_faces_many(tenant_id=tenant_id, embeddings=embeddings, model_id=engine.model_id,
                              top_k=min(query.top_k * FACES_PER_SUBJECT, 500), threshold=-1.0,
                              collection_id=collection.id, timings=timings)
    decision = person_decision(tenant_id, collection.id, engine.model_id, query, timings)
    result = PersonSearchResult(model_id=engine.model_id, collection=collection.name, decision=decision,
                                quality_filter=query.quality_filter,
                                left_out=[left_out_dict(f) for f in analysis.left_out])
    for face, matches in zip(analysis.faces, found, strict=True):
        candidates = [FaceCandidate(face_id=m.face_id, subject_id=m.subject_id, similarity=m.similarity)
                      for m in matches if m.subject_id is not None]
        ranked = [s for s in rank_subjects(candidates) if s.score >= decision.threshold][:query.top_k]
        result.faces.append({"bbox": rounding.box(face.bbox), "det_score": rounding.score(face.det_score),
                             **shown_quality(face.quality), "subjects": [_subject_dict(s, decision) for s in ranked]})
    watch.lap("search")
    record_event(tenant_id=tenant_id, actor=actor, action="subjects.searched",
                 details={"collection_id": str(collection.id), "source": source.kind,
                          "query_faces": len(result.faces),
                          "matches": sum(len(f["subjects"]) for f in result.faces)})
    result.timings_ms = {name: round(ms, 2) for name, ms in watch.laps.items()}
    metrics.observe_search_stages(result.timings_ms, strategy=timings.strategy)
    return result


def verify_subject(*, tenant_id: UUID, source: ImageSource, subject_id: str, collection: str | None,
                   threshold: float | None, actor: Actor, max_false_match_rate: float | None = None) -> dict:
    """Is the largest face of the photo this subject? Compared with each of its enrolled faces (1:1).

    Decided as compare is: `threshold`, else `max_false_match_rate`, else FACE_MATCH_THRESHOLD.
    """
    engine = face_engine()
    target = searched_collection(tenant_id, collection, engine.model_id)
    decision = verification_threshold(model_id=engine.model_id, threshold=threshold,
                                      max_false_match_rate=max_false_match_rate)
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
    match = score.score >= decision.threshold
    record_event(tenant_id=tenant_id, actor=actor, action="subject.verified",
                 target={"collection_id": str(target.id), "subject_id": subject_id},
                 details={"faces_compared": len(face_ids), "match": match})
    return {"model_id": engine.model_id, "collection": target.name, "subject_id": subject_id,
            "score": rounding.score(score.score), "false_match_rate": decision.false_match_rate(score.score),
            "match": match, **verification_dict(decision),
            "method": DEFAULT_METHOD, "faces_compared": len(face_ids),
            "best_face_id": score.best_face_id, "best_similarity": rounding.score(score.best_similarity)}
