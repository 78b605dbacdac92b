"""Python client for the face search service's REST API, and the `facesearch` command."""

__version__ = "0.1.0"

from facesearch.client import PURGE_CONFIRMATION, Client, Image, UploadAsset
from facesearch.errors import (
    APIError,
    AuthenticationFailed,
    Conflict,
    DeletionTimeout,
    FaceSearchError,
    InvalidRequest,
    JobTimeout,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    WaitTimeout,
)

__all__ = ["PURGE_CONFIRMATION", "APIError", "AuthenticationFailed", "Client", "Conflict", "DeletionTimeout",
           "FaceSearchError", "Image", "InvalidRequest", "JobTimeout", "NotFound", "PermissionDenied", "RateLimited",
           "ServerError", "UploadAsset", "WaitTimeout", "__version__"]
