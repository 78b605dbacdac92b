"""The provider interface shared by every KMS back end.

Every provider's calls are measured here, once for all back ends: a count, a time
and the error class per operation (faceservice_kms_* metrics) and a `kms.<operation>`
span when traces are on. Never a key, a context or a key id.
"""

from __future__ import annotations

import abc
import enum
import functools
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from faceservice import metrics, tracing

from .errors import DecryptionFailed, KmsError

DATA_KEY_BYTES = 32  # AES-256


class KeyState(enum.StrEnum):
    """State of a master key. Only ENABLED keys may be used."""

    ENABLED = "Enabled"
    DISABLED = "Disabled"
    PENDING_DELETION = "PendingDeletion"
    PENDING_IMPORT = "PendingImport"
    UNAVAILABLE = "Unavailable"  # any other AWS state (Creating, Updating, ...)

    @classmethod
    def from_aws(cls, value: str) -> KeyState:
        try:
            return cls(value)
        except ValueError:
            return cls.UNAVAILABLE

    @property
    def usable(self) -> bool:
        return self is KeyState.ENABLED


@dataclass(frozen=True, eq=False)
class DataKey:
    """A freshly generated data key: the plaintext (keep in memory only) and the
    wrapped form (the only thing that may be stored).

    ``repr`` never shows the plaintext, and the object refuses to be pickled so
    that it cannot end up in a broker message, a cache backend or a session.
    """

    plaintext: bytes = field(repr=False)
    wrapped: bytes = field(repr=False)
    master_key_id: str

    def __repr__(self) -> str:
        return (f"DataKey(master_key_id={self.master_key_id!r}, "
                f"wrapped=<{len(self.wrapped)} bytes>, plaintext=<redacted>)")

    def __reduce__(self):  # pickle, copy
        raise TypeError("DataKey holds a plaintext key and must not be pickled or copied")

    def __reduce_ex__(self, protocol):
        return self.__reduce__()

    def __getstate__(self):
        raise TypeError("DataKey holds a plaintext key and must not be pickled")


def check_context(context: Mapping[str, str]) -> dict[str, str]:
    """Validate an encryption context: a non-empty mapping of str to str.

    A data key is always bound to something (at least the tenant), so an empty
    context is refused rather than silently producing an unbound key.
    """
    if not isinstance(context, Mapping) or not context:
        raise KmsError("encryption context must be a non-empty mapping of str to str")
    out: dict[str, str] = {}
    for key, value in context.items():
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            raise KmsError("encryption context keys and values must be strings (keys non-empty)")
        out[key] = value
    return out


def canonical_context(context: Mapping[str, str]) -> bytes:
    """Unambiguous byte encoding of a context: sorted, compact JSON in UTF-8."""
    return json.dumps(check_context(context), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def check_wrapped(wrapped: object) -> bytes:
    if not isinstance(wrapped, (bytes, bytearray, memoryview)) or len(wrapped) == 0:
        raise DecryptionFailed("wrapped key must be non-empty bytes")
    return bytes(wrapped)


class KmsProvider(abc.ABC):
    """Envelope-encryption operations on data keys under a master key.

    Every method is keyword-only where it takes key material or context, and
    every failure is a :class:`~tenants.kms.errors.KmsError` subclass.
    Implementations are thread-safe.
    """

    name: str = "abstract"

    def __init_subclass__(cls, **kwargs) -> None:
        # Each back end's own implementation of an operation is wrapped once, when it is defined.
        super().__init_subclass__(**kwargs)
        for operation in MEASURED_OPERATIONS:
            method = cls.__dict__.get(operation)
            if method is not None and not getattr(method, "__isabstractmethod__", False):
                setattr(cls, operation, _measured(operation, method))

    @property
    @abc.abstractmethod
    def current_key_id(self) -> str:
        """The master key new data keys are wrapped under."""

    @abc.abstractmethod
    def generate_data_key(self, *, context: Mapping[str, str]) -> DataKey:
        """A new random 32-byte data key, wrapped under :attr:`current_key_id`
        and bound to ``context``."""

    @abc.abstractmethod
    def decrypt_data_key(self, *, wrapped: bytes, context: Mapping[str, str],
                         master_key_id: str) -> bytes:
        """Unwrap ``wrapped``; the context and master key id must be the ones
        it was made with, else :class:`DecryptionFailed`."""

    @abc.abstractmethod
    def rewrap(self, *, wrapped: bytes, context: Mapping[str, str], source_key_id: str,
               destination_key_id: str) -> bytes:
        """Re-wrap a data key under another master key (same context) without
        handing the plaintext to the caller."""

    @abc.abstractmethod
    def describe(self, master_key_id: str) -> KeyState:
        """The current state of a master key (not cached)."""

    def resolve_key_id(self, master_key_id: str) -> str:
        """The stable id to store next to a wrapped key (e.g. an alias resolved
        to its key ARN). Identity by default."""
        return master_key_id


MEASURED_OPERATIONS = ("generate_data_key", "decrypt_data_key", "rewrap", "describe")


def _measured(operation: str, method: Callable) -> Callable:
    """`method` counted and timed per provider, its failures by error class, inside a span."""

    @functools.wraps(method)
    def measured(self: KmsProvider, *args, **kwargs):
        started, error = time.perf_counter(), None
        try:
            with tracing.span(f"kms.{operation}", **{"kms.provider": self.name}):
                return method(self, *args, **kwargs)
        except Exception as exc:
            error = type(exc).__name__
            raise
        finally:
            metrics.observe_kms_call(provider=self.name, operation=operation,
                                     seconds=time.perf_counter() - started, error=error)

    return measured
