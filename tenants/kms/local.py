"""The embedded KMS: master keys in a local keyring file.

For development, tests and single-host installs. The master keys sit on the
same host as the data they protect, so this is weaker than a real KMS (see
docs/SECURITY.md, "5. Providers"); production should use ``aws``.

Keyring file (text, one master key per line, newest last)::

    # faceservice-local-kms-keyring v1
    # Secret. Mode 0600. Back it up: losing it loses every tenant's face data.
    local-000001 enabled <base64 of 32 random bytes>
    local-000002 enabled <base64 ...>

- Created on first use, mode 0600, published atomically: the content is written
  to a private temp file opened with O_CREAT|O_EXCL, fsynced, then hard-linked
  into place with link(2), which fails if the name exists. Two processes racing
  on first start therefore agree on one key, and no reader ever sees a partly
  written file. (Where the file system has no hard links we fall back to
  O_CREAT|O_EXCL on the final name; readers retry briefly on a partial file.)
- A file or folder others can read/write, a symlink, or a file owned by another
  user is refused (:class:`InsecureKeyFile`).
- Adding a key (rotation) or changing a key's state rewrites the file under an
  flock, via temp file + rename, so readers see the old or the new keyring.
- Every process re-reads the file when it changes (stat on each operation), so
  a rotation done by one process is seen by the others.

A wrapped data key is a faceservice/sealing.py blob of the 32-byte key under
the master key, bound (associated data) to a fixed label, the master key id
and the canonical (sorted JSON) encryption context: it opens only under the
master key id and context the caller stored with it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import fcntl
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from faceservice import sealing

from .base import (
    DATA_KEY_BYTES,
    DataKey,
    KeyState,
    KmsProvider,
    canonical_context,
    check_wrapped,
)
from .errors import DecryptionFailed, InsecureKeyFile, KeyDisabled, KeyNotFound, KmsError

KEYRING_MAGIC = "# faceservice-local-kms-keyring v1"
_WRAP_LABEL = "faceservice/local-kms/wrap"
_KEY_ID_RE = re.compile(r"^local-(\d{6})$")
_STATES = {"enabled": KeyState.ENABLED, "disabled": KeyState.DISABLED}
_STATE_NAMES = {v: k for k, v in _STATES.items()}


@dataclass(frozen=True)
class _MasterKey:
    key_id: str
    state: KeyState
    material: bytes = field(repr=False)

    def __reduce__(self):
        raise TypeError("master keys must not be pickled")


def _key_number(key_id: str) -> int:
    match = _KEY_ID_RE.match(key_id)
    if not match:
        raise KeyNotFound(f"not a local master key id: {key_id!r}")
    return int(match.group(1))


def _format_key_id(number: int) -> str:
    if not 0 < number <= 999_999:
        raise KmsError("local keyring is full")
    return f"local-{number:06d}"


def _wrap_aad(key_id: str, context: Mapping[str, str]) -> bytes:
    return sealing.associated_data(_WRAP_LABEL, key_id, canonical_context(context))


def _serialize(keys: Mapping[str, _MasterKey]) -> bytes:
    lines = [KEYRING_MAGIC,
             "# Secret. Mode 0600. Back it up: losing it loses every tenant's face data."]
    for key_id in sorted(keys, key=_key_number):
        key = keys[key_id]
        lines.append(f"{key_id} {_STATE_NAMES[key.state]} "
                     f"{base64.b64encode(key.material).decode('ascii')}")
    return ("\n".join(lines) + "\n").encode("ascii")


def _parse(data: bytes, path: Path) -> dict[str, _MasterKey]:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise KmsError(f"{path}: not a local KMS keyring") from None
    lines = text.split("\n")
    if lines[0].rstrip("\r") != KEYRING_MAGIC or not text.endswith("\n"):
        raise KmsError(f"{path}: not a local KMS keyring (or incompletely written)")
    keys: dict[str, _MasterKey] = {}
    for lineno, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3 or not _KEY_ID_RE.match(parts[0]) or parts[1] not in _STATES:
            raise KmsError(f"{path}:{lineno}: malformed keyring line")
        try:
            material = base64.b64decode(parts[2], validate=True)
        except (binascii.Error, ValueError):
            raise KmsError(f"{path}:{lineno}: malformed key material") from None
        if len(material) != DATA_KEY_BYTES:
            raise KmsError(f"{path}:{lineno}: master key must be {DATA_KEY_BYTES} bytes")
        if parts[0] in keys:
            raise KmsError(f"{path}:{lineno}: duplicate key id {parts[0]}")
        keys[parts[0]] = _MasterKey(parts[0], _STATES[parts[1]], material)
    if not keys:
        raise KmsError(f"{path}: keyring holds no keys")
    return keys


def _euid() -> int:
    return os.geteuid()


def _check_file(st: os.stat_result, path: Path) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise InsecureKeyFile(f"{path}: keyring must be a regular file")
    if st.st_uid != _euid():
        raise InsecureKeyFile(f"{path}: keyring is owned by uid {st.st_uid}, not by us")
    if st.st_mode & 0o077:
        raise InsecureKeyFile(
            f"{path}: keyring mode is {stat.S_IMODE(st.st_mode):04o}; it must not be "
            "accessible to group or others (chmod 600)")


def _check_dir(directory: Path) -> None:
    st = os.stat(directory)
    if not stat.S_ISDIR(st.st_mode):
        raise InsecureKeyFile(f"{directory}: not a directory")
    if st.st_uid not in (_euid(), 0):
        raise InsecureKeyFile(f"{directory}: owned by uid {st.st_uid}; keyring folder "
                              "must belong to us or root")
    if st.st_mode & 0o022:
        raise InsecureKeyFile(f"{directory}: writable by group or others; keyring folder "
                              "must not be (chmod 700)")


def _stamp(st: os.stat_result) -> tuple[int, ...]:
    """What must change for us to re-read (and re-check) the keyring: content,
    replacement, and also ownership/mode, so a chmod 644 is noticed at once."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode, st.st_uid)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` exclusively with mode 0600 and write ``data`` durably."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalKmsProvider(KmsProvider):
    """Master keys in a local keyring file (see the module docstring).

    ``path``: the keyring file. ``key_id``: pin the master key used for new data
    keys (default: the newest key in the keyring). ``create``: make the keyring
    on first use if it does not exist (default True).
    """

    name = "local"

    def __init__(self, *, path: str | os.PathLike[str], key_id: str | None = None,
                 create: bool = True) -> None:
        self._path = Path(path)
        self._pinned = key_id
        if key_id is not None:
            _key_number(key_id)
        self._create = create
        self._lock = threading.RLock()
        self._keys: dict[str, _MasterKey] = {}
        self._stamp: tuple[int, ...] | None = None
        self._ever_loaded = False

    def __repr__(self) -> str:
        return f"LocalKmsProvider(path={str(self._path)!r})"

    def __reduce__(self):
        raise TypeError("KMS providers hold key material and must not be pickled")

    @property
    def path(self) -> Path:
        return self._path

    # --- keyring file -------------------------------------------------------------

    def _read(self) -> tuple[dict[str, _MasterKey], tuple[int, ...]]:
        deadline = time.monotonic() + 2.0
        while True:
            try:
                fd = os.open(self._path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise InsecureKeyFile(f"{self._path}: keyring must not be a symlink") from None
                raise
            try:
                st = os.fstat(fd)
                _check_file(st, self._path)
                chunks = []
                while chunk := os.read(fd, 65536):
                    chunks.append(chunk)
            finally:
                os.close(fd)
            stamp = _stamp(st)
            try:
                return _parse(b"".join(chunks), self._path), stamp
            except KmsError:
                # Only the no-hard-link fallback can expose a file being written:
                # give a young, incomplete file a moment before failing.
                if time.monotonic() < deadline and time.time() - st.st_mtime < 5:
                    time.sleep(0.05)
                    continue
                raise

    def _create_keyring(self) -> None:
        directory = self._path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _check_dir(directory)
        material = os.urandom(DATA_KEY_BYTES)
        data = _serialize({_format_key_id(1): _MasterKey(_format_key_id(1), KeyState.ENABLED,
                                                          material)})
        tmp = directory / f".{self._path.name}.{secrets.token_hex(8)}.tmp"
        _write_private(tmp, data)
        try:
            os.link(tmp, self._path)  # atomic; EEXIST if another process won the race
        except FileExistsError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV,
                                 errno.EMLINK):
                raise
            with contextlib.suppress(FileExistsError):  # no hard links here
                _write_private(self._path, data)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _fsync_dir(directory)

    def _keyring(self) -> dict[str, _MasterKey]:
        """The current keyring, re-read when the file changed."""
        with self._lock:
            try:
                st = os.stat(self._path, follow_symlinks=False)
            except FileNotFoundError:
                if self._ever_loaded:
                    raise KmsError(f"{self._path}: keyring file disappeared; refusing to "
                                   "create a new one in its place") from None
                if not self._create:
                    raise KeyNotFound(f"{self._path}: keyring file does not exist") from None
                self._create_keyring()
                st = os.stat(self._path, follow_symlinks=False)
            if _stamp(st) != self._stamp:
                _check_dir(self._path.parent)
                self._keys, self._stamp = self._read()
                self._ever_loaded = True
            return self._keys

    def _rewrite(self, change: Callable[[dict[str, _MasterKey]], str]) -> str:
        """Apply ``change`` to the keyring under an exclusive file lock."""
        self._keyring()  # creates it if needed, checks permissions
        lock_path = self._path.with_name(self._path.name + ".lock")
        with self._lock:
            lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                              0o600)
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                keys, _ = self._read()
                result = change(keys)
                tmp = self._path.with_name(f".{self._path.name}.{secrets.token_hex(8)}.tmp")
                _write_private(tmp, _serialize(keys))
                try:
                    os.replace(tmp, self._path)
                except BaseException:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
                    raise
                _fsync_dir(self._path.parent)
            finally:
                os.close(lock_fd)  # releases the flock
            self._stamp = None  # force a re-read
        return result

    def _key(self, key_id: str) -> _MasterKey:
        _key_number(key_id)
        key = self._keyring().get(key_id)
        if key is None:
            raise KeyNotFound(f"master key {key_id} is not in keyring {self._path}")
        return key

    def _usable_key(self, key_id: str) -> _MasterKey:
        key = self._key(key_id)
        if not key.state.usable:
            raise KeyDisabled(f"master key {key_id} is {key.state.value}")
        return key

    # --- key management (operator actions) -----------------------------------------

    def create_master_key(self) -> str:
        """Add a new master key (rotation); it becomes current unless a key is pinned."""
        def add(keys: dict[str, _MasterKey]) -> str:
            new_id = _format_key_id(max(map(_key_number, keys)) + 1)
            keys[new_id] = _MasterKey(new_id, KeyState.ENABLED, os.urandom(DATA_KEY_BYTES))
            return new_id
        return self._rewrite(add)

    def set_key_state(self, key_id: str, state: KeyState) -> None:
        """Enable or disable a master key (e.g. retire one after re-wrapping)."""
        if state not in _STATE_NAMES:
            raise KmsError(f"local keys can only be {sorted(s.value for s in _STATE_NAMES)}")

        def change(keys: dict[str, _MasterKey]) -> str:
            if key_id not in keys:
                raise KeyNotFound(f"master key {key_id} is not in keyring {self._path}")
            keys[key_id] = _MasterKey(key_id, state, keys[key_id].material)
            return key_id
        self._rewrite(change)

    def key_ids(self) -> list[str]:
        return sorted(self._keyring(), key=_key_number)

    # --- KmsProvider ---------------------------------------------------------------

    @property
    def current_key_id(self) -> str:
        if self._pinned is not None:
            return self._pinned
        return max(self._keyring(), key=_key_number)

    def describe(self, master_key_id: str) -> KeyState:
        return self._key(master_key_id).state

    def _wrap(self, key: _MasterKey, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        return sealing.seal(key.material, plaintext, associated_data=_wrap_aad(key.key_id, context))

    def _unwrap(self, wrapped: bytes, context: Mapping[str, str], master_key_id: str) -> bytes:
        blob = check_wrapped(wrapped)
        aad = _wrap_aad(master_key_id, context)
        if len(blob) != sealing.sealed_size(DATA_KEY_BYTES):
            raise DecryptionFailed("wrapped key has the wrong length")
        key = self._usable_key(master_key_id)
        try:
            return sealing.open_sealed(key.material, blob, associated_data=aad)
        except sealing.SealError:
            raise DecryptionFailed(f"wrapped key did not verify under {master_key_id} with this context") from None

    def generate_data_key(self, *, context: Mapping[str, str]) -> DataKey:
        canonical_context(context)  # validate before touching keys
        key = self._usable_key(self.current_key_id)
        plaintext = os.urandom(DATA_KEY_BYTES)
        return DataKey(plaintext=plaintext, wrapped=self._wrap(key, plaintext, context),
                       master_key_id=key.key_id)

    def decrypt_data_key(self, *, wrapped: bytes, context: Mapping[str, str], master_key_id: str) -> bytes:
        return self._unwrap(wrapped, context, master_key_id)

    def rewrap(self, *, wrapped: bytes, context: Mapping[str, str], source_key_id: str,
               destination_key_id: str) -> bytes:
        destination = self._usable_key(destination_key_id)
        plaintext = self._unwrap(wrapped, context, source_key_id)
        return self._wrap(destination, plaintext, context)
