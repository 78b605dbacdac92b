"""Errors raised by the KMS providers.

Messages never contain key material or wrapped keys: they name the operation,
the master key id and the provider's error code, nothing more.
"""

from __future__ import annotations


class KmsError(Exception):
    """Base class for every KMS failure."""


class KeyDisabled(KmsError):
    """The master key exists but may not be used (disabled, pending deletion, ...)."""


class KeyNotFound(KmsError):
    """No master key with that id (or alias) exists."""


class DecryptionFailed(KmsError):
    """A wrapped key did not unwrap: wrong encryption context, tampered blob,
    or a different master key than the one it was wrapped under."""


class KmsUnavailable(KmsError):
    """Transient failure (network, timeout, throttling, KMS internal error).

    Safe to retry later; callers (e.g. Celery tasks) should back off and retry.
    """


class InsecureKeyFile(KmsError):
    """The local keyring file (or its folder) has unsafe ownership or permissions."""
