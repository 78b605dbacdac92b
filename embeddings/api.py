"""API pieces that the embeddings packages' views share: image fields and their documented errors.

Views only; nothing below the API layer imports this module.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse

from embeddings.image_sources import ImageSourceInput, uploaded_source

IMAGE_ERRORS = {
    400: OpenApiResponse(description="Invalid request (code invalid_request / malformed_request)"),
    404: OpenApiResponse(description="Unknown or another tenant's id (code not_found)"),
    413: OpenApiResponse(description="Image or body too large (image_too_large / request_too_large)"),
    415: OpenApiResponse(description="Not an image, or a format we do not accept"),
    422: OpenApiResponse(description="Corrupt image, fetch refused/failed, no face found"),
    429: OpenApiResponse(description="Rate limited (Retry-After says when to try again)"),
    503: OpenApiResponse(description="Face models are not installed (models_unavailable)"),
}


def image_from(request, field: str, data: dict):
    """An ImageSource from a multipart file field or a JSON image object."""
    upload = request.FILES.get(field)
    if upload is not None:
        return uploaded_source(upload)
    if data.get(field):
        return ImageSourceInput.to_source(data[field])
    return None


def plain_data(request) -> dict:
    """The non-file fields of the request as a plain dict (multipart QueryDicts hold lists)."""
    data = request.data
    if not hasattr(data, "getlist"):
        return data
    plain = {}
    for key in data:
        if key in request.FILES:
            continue
        values = data.getlist(key)
        plain[key] = values if key.endswith("_ids") else values[-1]
    return plain
