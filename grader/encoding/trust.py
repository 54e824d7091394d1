"""What this installation has verified, kept outside the model cache so that writing the cache is not enough to swap a model.

Two records live in the state folder (the ``state_dir`` setting, ``GRADER_STATE_DIR``,
default ``~/.local/state/grader``), never in the cache or beside the weights:

* ``verified.json``: the sha256 of each weights file hashed here, keyed by the file's
  device, inode, size, mtime and ctime. Writing the file changes its ctime, which no
  user can set back, so a changed file is always hashed again; an unchanged one is not
  (hashing MiniLM's 91 MB costs about 0.17 s a start).
* ``cache.key``: a random secret (mode 0600). Each ONNX file built from verified weights
  is sealed with an HMAC of its own sha256, the source weights' sha256 and the export
  recipe under this key. A file and manifest written into the cache by anyone without
  the key fail the check and are rebuilt from the verified weights.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
from pathlib import Path

from grader.errors import ModelError
from grader.settings import make_settings

KEY_FILE = "cache.key"
VERIFIED_FILE = "verified.json"
_lock = threading.Lock()


def state_dir() -> Path:
    """The state folder: the ``state_dir`` setting (``GRADER_STATE_DIR``) or ``~/.local/state/grader``."""
    return make_settings().state_dir or Path.home() / ".local" / "state" / "grader"


def _identity(path: Path) -> dict:
    st = path.stat()
    return {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "ctime_ns": st.st_ctime_ns}


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def known_digest(path: Path) -> str | None:
    """The sha256 recorded for ``path`` when the file is unchanged since it was hashed here, else None."""
    try:
        records = json.loads((state_dir() / VERIFIED_FILE).read_text())
        saved = records.get(str(path.resolve()))
        if saved and saved.get("identity") == _identity(path):
            return saved.get("sha256")
    except (OSError, ValueError, AttributeError):
        pass
    return None


def remember_digest(path: Path, digest: str) -> None:
    """Record ``digest`` as the sha256 of ``path`` as it is now (best effort: a read-only home hashes again)."""
    with _lock:
        target = state_dir() / VERIFIED_FILE
        try:
            records = json.loads(target.read_text())
            if not isinstance(records, dict):
                records = {}
        except (OSError, ValueError):
            records = {}
        records[str(path.resolve())] = {"identity": _identity(path), "sha256": digest}
        try:
            _write_private(target, json.dumps(records, indent=1).encode())
        except OSError:
            pass


def _key() -> bytes:
    """This installation's sealing key, made on first use."""
    path = state_dir() / KEY_FILE
    with _lock:
        try:
            key = path.read_bytes()
            if len(key) >= 32:
                return key
        except OSError:
            pass
        key = secrets.token_bytes(32)
        try:
            _write_private(path, key)
        except OSError as exc:
            raise ModelError(f"cannot write the cache-sealing key ({exc}); set GRADER_STATE_DIR to a writable "
                             "folder outside the model cache", source=str(path)) from None
        return key


def seal(record: dict) -> str:
    """HMAC-SHA256 of ``record`` (canonical JSON) under this installation's key."""
    payload = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(_key(), payload, hashlib.sha256).hexdigest()


def is_sealed(record: dict, mac: str | None) -> bool:
    """Whether ``mac`` is this installation's seal of ``record``."""
    return isinstance(mac, str) and hmac.compare_digest(seal(record), mac)
