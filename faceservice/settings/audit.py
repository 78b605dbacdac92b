"""The audit log (docs/AUDIT.md) and the consoles: staff admin and the auditors' console."""

from pydantic import Field

from faceservice.settings.environment import CommaList, Variables, export, read, shown


class Audit(Variables):
    """Audit log and consoles"""

    # Audit events are kept for years, not days. The database refuses to purge
    # events younger than 365 days whatever this says (audit_min_retention()).
    AUDIT_RETENTION_DAYS: int = Field(
        2557, description="audit events older than this are purged (never under 365); 2557 days are 7 years")
    # Keep it apart from the database credentials; empty derives one from SECRET_KEY (development only).
    AUDIT_ANCHOR_KEY: str = Field(
        "", json_schema_extra=shown("empty (derived from `SECRET_KEY`)"),
        description="HMAC key for chain-head anchors and retention checkpoints; set a separate random secret")
    AUDIT_ANCHOR_OLD_KEYS: CommaList = Field([], description="previous anchor keys, still accepted when verifying")
    AUDIT_ANCHOR_S3_BUCKET: str = Field(
        "", description="S3 bucket created with Object Lock enabled, an external sink for anchors (off when empty)")
    AUDIT_ANCHOR_S3_PREFIX: str = Field("audit-anchors/", description="key prefix in that bucket")
    AUDIT_ANCHOR_S3_LOCK_MODE: str = Field("COMPLIANCE", description="Object Lock mode")
    AUDIT_ANCHOR_S3_RETENTION_DAYS: int = Field(
        default_factory=lambda variables: variables["AUDIT_RETENTION_DAYS"],
        json_schema_extra=shown("`AUDIT_RETENTION_DAYS`"), description="Object Lock retention of anchors")
    AUDIT_EXPORT_CHUNK_SIZE: int = Field(2000, description="rows per server-side cursor batch in audit exports")
    CONSOLE_IDLE_TIMEOUT_SECONDS: int = Field(
        900, exclude=True, description="console session idle timeout (staff admin and auditors' console)")
    CONSOLE_MAX_SESSION_SECONDS: int = Field(8 * 3600, description="console session absolute limit")
    CONSOLE_LOCKOUT_THRESHOLD: int = Field(5, description="failed sign-ins before a console name is locked")
    CONSOLE_LOCKOUT_SECONDS: int = Field(900, description="how long it stays locked")
    OTP_TOTP_ISSUER: str = Field("Face search audit console", description="issuer shown in authenticator apps")


_audit = read(Audit)
export(_audit, globals())

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Strict"
SESSION_COOKIE_AGE = _audit.CONSOLE_IDLE_TIMEOUT_SECONDS
SESSION_SAVE_EVERY_REQUEST = True  # idle timeout: each request renews the short session
