"""Face detection over HTTP (POST /v1/detect): boxes, landmarks, quality and pose; stores and searches nothing."""
