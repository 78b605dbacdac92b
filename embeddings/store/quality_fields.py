"""The API fields of a face's quality and pose (the shape embeddings/store/face_quality.py makes).

Shared by every endpoint that shows a face (detect, search, index-job results,
face listings), so the schema says the same of them everywhere.
"""

from __future__ import annotations

from rest_framework import serializers

from embeddings.engine import QUALITY_FILTERS

LEFT_OUT_REASONS_HELP = (
    "Why the face was not used: `low_score` (detector confidence below `min_det_score` or the quality "
    "filter's), `too_small` (box below `min_face_size` or the filter's minimum), `extreme_pose` (yaw or "
    "pitch past the filter's limit), `low_brightness`, `low_sharpness` (below the filter's bar), "
    "`not_largest_face` (an enrolment photo: only its largest face is the subject's), `over_max_faces` "
    "(more faces than `max_faces`)")


def quality_filter_field(*, default: str, what: str) -> serializers.ChoiceField:
    """The `quality_filter` input: Rekognition's level names; the bars are in docs/MODELS.md ("Face quality")."""
    return serializers.ChoiceField(
        choices=QUALITY_FILTERS, default=default,
        help_text=f"Leave out {what} below a quality bar: NONE, LOW, MEDIUM, HIGH, or AUTO (= LOW, chosen by "
                  f"measurement: it leaves out the blurred, dark and profile faces no recognizer uses). "
                  f"Default {default}. Each face left out is listed in `left_out` with its reason "
                  f"(low_score, too_small, extreme_pose, low_brightness, low_sharpness)")


class QualityOutput(serializers.Serializer):
    sharpness = serializers.FloatField(help_text="0 (blurred) .. 1 (sharp), as the recognizer sees the face")
    brightness = serializers.FloatField(help_text="0 (black) .. 1 (white), mean of the face region")


class PoseOutput(serializers.Serializer):
    yaw = serializers.FloatField(help_text="degrees, > 0 turned towards the image's right (rough: ±25 %)")
    pitch = serializers.FloatField(help_text="degrees, > 0 looking up (rough, per-person offset up to ~10°)")
    roll = serializers.FloatField(help_text="degrees, > 0 tilted clockwise (accurate to a degree or two)")


def quality_output(**kwargs) -> QualityOutput:
    return QualityOutput(help_text="How usable the face is for recognition (null: not measured, e.g. a face "
                                   "indexed before quality was measured)", **kwargs)


def pose_output(**kwargs) -> PoseOutput:
    return PoseOutput(help_text="Head pose from the five landmarks (null: not measured)", **kwargs)
