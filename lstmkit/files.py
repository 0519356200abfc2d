"""Files that are never half-written: atomic writes, and tensor files as safetensors + JSON metadata.

Every file lstmkit writes goes to a temporary name in the same folder and is renamed into place,
so a crash leaves the old file or the new one, never a torn one. Model and checkpoint files are
safetensors (no pickle, nothing executed on load) whose string metadata carries a format tag, the
JSON config and a SHA-256 of the tensors, so a damaged or foreign file is refused, not loaded wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

import torch


def atomic_write_bytes(path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename; creates the folder."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + "-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)      # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_umask() -> int:
    mask = os.umask(0)        # the only way to read it; done once, at import, before any threads write
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path, obj) -> None:
    """Pretty JSON, atomically. NaN/inf are refused (they are not JSON)."""
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k]
        h.update(k.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """module.state_dict() as detached, contiguous CPU copies (what safetensors can store)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}


def save_tensor_file(path, tensors: dict[str, torch.Tensor], fmt: str, metadata: dict[str, str] | None = None) -> None:
    """One safetensors file holding `tensors`, the format tag `fmt`, `metadata` and a checksum."""
    from safetensors.torch import save

    meta = {**(metadata or {}), "format": fmt, "weights_sha256": tensors_digest(tensors)}
    atomic_write_bytes(path, save(tensors, metadata=meta))


def load_tensor_file(path, fmt: str | tuple[str, ...]) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """-> (metadata, tensors) of a file written by save_tensor_file with one of the formats `fmt`.

    Raises FileNotFoundError for a missing file and ValueError naming the file for a truncated,
    corrupted or foreign one."""
    from safetensors.torch import load

    path = os.fspath(path)
    formats = (fmt,) if isinstance(fmt, str) else tuple(fmt)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        if len(raw) < 8:
            raise ValueError(f"only {len(raw)} bytes")
        n = int.from_bytes(raw[:8], "little")
        if n <= 0 or 8 + n > len(raw):
            raise ValueError(f"header length {n} does not fit in {len(raw)} bytes")
        metadata = json.loads(raw[8:8 + n]).get("__metadata__") or {}
        tensors = load(raw)
    except Exception as exc:  # safetensors and json raise their own error types
        raise ValueError(f"{path} is not a complete lstmkit file (truncated or corrupted): {exc}") from None
    if metadata.get("format") not in formats:
        raise ValueError(f"{path} holds {metadata.get('format') or 'no lstmkit format tag'}, "
                         f"expected {' or '.join(formats)}")
    if metadata.get("weights_sha256") != tensors_digest(tensors):
        raise ValueError(f"{path} is corrupted: its weights do not match the checksum stored with them")
    return metadata, tensors
