"""Load the face models when a serving process starts, not on its first request."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def warm_up_face_engine() -> None:
    """Load and warm the engine; a missing pack is logged, not fatal (/readyz reports it)."""
    from embeddings.engine import ModelsUnavailable
    from embeddings.face_engine import face_engine

    try:
        engine = face_engine()
    except ModelsUnavailable as exc:
        logger.warning("face models unavailable; face endpoints will answer 503", extra={"detail": str(exc)})
        return
    logger.info("face engine loaded", extra={"model_id": engine.model_id, "dimension": engine.dimension})
