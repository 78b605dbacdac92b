"""Anomalous access (audit/anomalies; docs/AUDIT.md "Anomalous access") and the console's back-off.

Every threshold counts events in a window that ends when the detector runs. The
defaults are meant to stay silent for a busy but ordinary tenant and to fire on
a scripted attack within one detector run; tune them per deployment.
"""

from pydantic import Field

from faceservice.settings.environment import Variables, export, read


class Anomalies(Variables):
    """Anomalous access alerts"""

    ANOMALY_DETECT_INTERVAL_SECONDS: int = Field(300, description="how often beat looks for anomalous access")
    ANOMALY_COOLDOWN_SECONDS: int = Field(
        3600, description="the same anomaly (rule and subject) is raised at most once in this long")
    ANOMALY_BURST_WINDOW_SECONDS: int = Field(
        600, description="window of the refused-request rules (401, 403, 429)")
    ANOMALY_REFUSED_PER_KEY: int = Field(50, description="refused requests (403, 429) of one API key in the window")
    ANOMALY_REFUSED_PER_ADDRESS: int = Field(
        100, description="refused requests (401, 403, 429) from one client address in the window")
    ANOMALY_WINDOW_SECONDS: int = Field(
        3600, description="window of the other rules (addresses, volume, deletions, console sign-ins)")
    ANOMALY_KEY_MAX_ADDRESSES: int = Field(
        20, description="an API key seen from more client addresses than this in the window")
    ANOMALY_VOLUME_FACTOR: float = Field(
        10.0, description="searches or exports above this many times the tenant's own median per window ...")
    ANOMALY_VOLUME_BASELINE_DAYS: int = Field(7, description="... over the trailing days ...")
    ANOMALY_VOLUME_MIN_SEARCHES: int = Field(1000, description="... and at least this many searches in the window")
    ANOMALY_VOLUME_MIN_EXPORTS: int = Field(20, description="... or at least this many audit exports")
    ANOMALY_BULK_DELETE_FACES: int = Field(1000, description="faces deleted by one tenant in the window")
    ANOMALY_BULK_DELETE_REQUESTS: int = Field(100, description="deletion requests of one tenant in the window")
    ANOMALY_CONSOLE_FAILURES: int = Field(
        10, description="failed console sign-ins for one user name, or from one address, in the window")
    OPERATOR_ALERT_WEBHOOK_URL: str = Field(
        "", description="the operator's alert receiver: each anomaly is POSTed here as JSON (off when empty)")
    OPERATOR_ALERT_WEBHOOK_SECRET: str = Field(
        "", description="`whsec_` + base64 secret: alerts are signed with Standard Webhooks headers (unsigned "
        "when empty)")
    # Here rather than with the other console settings: it came with the per-address lock-out.
    CONSOLE_LOCKOUT_MAX_SECONDS: int = Field(
        24 * 3600, description="longest console lock-out: each lock-out of a name and address doubles "
        "`CONSOLE_LOCKOUT_SECONDS` up to this")


export(read(Anomalies), globals())
