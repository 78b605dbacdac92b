"""Writes of subjects: rename, merge, associate and disassociate faces (Rekognition's AssociateFaces)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from audit.services import Actor, record_event
from embeddings.store.collections import collection_named
from embeddings.store.generations import next_generation
from embeddings.store.models import Asset, Face
from embeddings.store.services import check_subject_room
from embeddings.subjects.selectors import SubjectNotFound
from faceservice.durable import advisory_lock
from faceservice.errors import Conflict, InvalidRequest
from faceservice.tenancy import tenant_context


class SubjectExists(Conflict):
    code = "subject_exists"
    default_message = "The new subject id already has faces in this collection; merge the subjects instead."


@dataclass
class FaceChanges:
    """What associate / disassociate did: the faces changed, and why each other one was not."""

    subject_id: str
    changed: list[str] = field(default_factory=list)
    unchanged: list[dict] = field(default_factory=list)  # {face_id, reason}


def _relabel(tenant_id, collection_id: UUID, subject_ids: Sequence[str], to: str) -> tuple[int, int]:
    """Give the faces and assets of `subject_ids` the subject `to`: (faces, assets) changed."""
    faces = Face.objects.filter(tenant_id=tenant_id, collection_id=collection_id,
                                subject_id__in=list(subject_ids)).update(subject_id=to)
    assets = Asset.objects.filter(tenant_id=tenant_id, collection_id=collection_id,
                                  subject_id__in=list(subject_ids)).update(subject_id=to)
    next_generation(tenant_id, removes=False)
    return faces, assets


def rename_subject(*, tenant_id: UUID | str, collection: str | None = None, subject_id: str, new_subject_id: str,
                   actor: Actor) -> int:
    """Rename a subject (its faces and assets); how many faces. SubjectExists if the new id has faces."""
    with tenant_context(tenant_id):
        collection_id = collection_named(tenant_id, collection).id
        for name in sorted({subject_id, new_subject_id}):  # the same order everywhere: no deadlock
            advisory_lock(f"subject:{collection_id}:{name}")
        if subject_id == new_subject_id:
            raise InvalidRequest("The new subject id is the current one.")
        base = Face.objects.filter(tenant_id=tenant_id, collection_id=collection_id)
        if not base.filter(subject_id=subject_id).exists():
            raise SubjectNotFound()
        if base.filter(subject_id=new_subject_id).exists():
            raise SubjectExists()
        faces, _ = _relabel(tenant_id, collection_id, [subject_id], new_subject_id)
        record_event(tenant_id=tenant_id, actor=actor, action="subject.renamed",
                     target={"collection_id": str(collection_id), "subject_id": subject_id},
                     details={"new_subject_id": new_subject_id, "faces": faces})
    return faces


def merge_subjects(*, tenant_id: UUID | str, collection: str | None = None, subject_ids: Sequence[str], into: str,
                   actor: Actor) -> int:
    """Move every face of `subject_ids` to the subject `into`; the face count it then has."""
    sources = sorted(set(subject_ids) - {into})
    if not sources:
        raise InvalidRequest("Name at least one subject other than the one merged into.")
    with tenant_context(tenant_id):
        collection_id = collection_named(tenant_id, collection).id
        for name in sorted({*sources, into}):
            advisory_lock(f"subject:{collection_id}:{name}")
        base = Face.objects.filter(tenant_id=tenant_id, collection_id=collection_id)
        moving = base.filter(subject_id__in=sources).count()
        if moving == 0:
            raise SubjectNotFound("None of the subjects to merge has faces in this collection.")
        check_subject_room(tenant_id, collection_id, into, adding=moving, lock=False)
        _relabel(tenant_id, collection_id, sources, into)
        total = base.filter(subject_id=into).count()
        record_event(tenant_id=tenant_id, actor=actor, action="subject.merged",
                     target={"collection_id": str(collection_id), "subject_id": into},
                     details={"merged_subject_ids": sources, "faces_moved": moving})
    return total


def _owners(tenant_id, collection: str | None, face_ids: Sequence[UUID]) -> tuple[UUID, dict[UUID, str | None]]:
    """The collection's id, and the subject of each of these faces found in it."""
    collection_id = collection_named(tenant_id, collection).id
    found = dict(Face.objects.filter(tenant_id=tenant_id, collection_id=collection_id, id__in=list(face_ids))
                 .values_list("id", "subject_id"))
    return collection_id, found


def _set_subject(tenant_id, face_ids: list[UUID], subject_id: str | None) -> None:
    if face_ids:
        Face.objects.filter(tenant_id=tenant_id, id__in=face_ids).update(subject_id=subject_id)
        next_generation(tenant_id, removes=False)


def _record(tenant_id, actor: Actor, action: str, collection_id: UUID, result: FaceChanges) -> None:
    record_event(tenant_id=tenant_id, actor=actor, action=action,
                 target={"collection_id": str(collection_id), "subject_id": result.subject_id},
                 details={"faces": len(result.changed), "face_ids": result.changed})


def _sort(face_ids: Sequence[UUID], found: dict, result: FaceChanges, changes, reason: str) -> list[UUID]:
    """The faces to change (found, and `changes(owner)`); the others go to `result.unchanged` with a reason."""
    chosen = []
    for face_id in face_ids:
        if face_id not in found:
            result.unchanged.append({"face_id": str(face_id), "reason": "not_found"})
        elif changes(found[face_id]):
            chosen.append(face_id)
        else:
            result.unchanged.append({"face_id": str(face_id), "reason": reason})
    return chosen


def associate_faces(*, tenant_id: UUID | str, collection: str | None = None, subject_id: str,
                    face_ids: Sequence[UUID], actor: Actor) -> FaceChanges:
    """Give these faces the subject (moving them from any other); each face not changed is reported."""
    with tenant_context(tenant_id):
        collection_id, found = _owners(tenant_id, collection, face_ids)
        result = FaceChanges(subject_id=subject_id)
        moving = _sort(face_ids, found, result, lambda owner: owner != subject_id, "already_associated")
        if moving:
            check_subject_room(tenant_id, collection_id, subject_id, adding=len(moving))
        _set_subject(tenant_id, moving, subject_id)
        result.changed = [str(face_id) for face_id in moving]
        _record(tenant_id, actor, "faces.associated", collection_id, result)
    return result


def disassociate_faces(*, tenant_id: UUID | str, collection: str | None = None, subject_id: str,
                       face_ids: Sequence[UUID], actor: Actor) -> FaceChanges:
    """Take the subject off these faces (they stay indexed, without a subject)."""
    with tenant_context(tenant_id):
        collection_id, found = _owners(tenant_id, collection, face_ids)
        result = FaceChanges(subject_id=subject_id)
        leaving = _sort(face_ids, found, result, lambda owner: owner == subject_id, "not_associated")
        _set_subject(tenant_id, leaving, None)
        result.changed = [str(face_id) for face_id in leaving]
        _record(tenant_id, actor, "faces.disassociated", collection_id, result)
    return result
