"""A checkpoint's plain data (kind, config, meta such as the speaker list) read without torch.

`vqcodec speakers` only needs the speaker list, and importing torch alone costs ~1 s (more than
the whole command is allowed). A torch checkpoint is a zip holding `data.pkl`; this reads that
pickle with an unpickler that builds only plain containers: every tensor and every torch object
becomes None, and any other class is refused (like torch's weights_only=True, it never runs code
from the file). Returns None when the file is not in that layout, so callers fall back to
`checkpoint.load`.
"""
from __future__ import annotations

import collections
import os
import pickle
import zipfile
from typing import Any


class _Stub:
    """Stands for a torch object (tensor rebuild function, storage type, dtype): calls give None."""

    def __call__(self, *args, **kwargs):
        return None


class _PlainUnpickler(pickle.Unpickler):
    _ALLOWED = {("collections", "OrderedDict"): collections.OrderedDict}

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" or module.startswith("torch."):
            return _Stub()
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a checkpoint")

    def persistent_load(self, pid):  # tensor storages: not read
        return None


def read(path: str | os.PathLike) -> dict[str, Any] | None:
    """The checkpoint dict with tensors replaced by None, or None if `path` is not a zip-format
    torch checkpoint this can read."""
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(names) != 1:
                return None
            with z.open(names[0]) as fh:
                state = _PlainUnpickler(fh).load()
    except (OSError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError, AttributeError, ValueError,
            TypeError, IndexError, KeyError):
        return None
    return state if isinstance(state, dict) else None


def speakers(path: str | os.PathLike) -> list[str] | None:
    """The named voices of a vqcodec checkpoint (what `--speaker` accepts), or None when it cannot be
    read this way. Models with voice vectors name the voices they stored vectors for (training
    speakers; pseudo-speakers made by warping, `data.pseudo_speakers`, have none); v1 models name
    their speaker table."""
    state = read(path)
    if not state or state.get("format") != "vqcodec" or state.get("kind") != "vqvae":
        return None
    meta = state.get("meta") or {}
    voices = meta.get("voices")
    if isinstance(voices, dict) and voices:
        return [str(s) for s in voices]
    found = meta.get("speakers")
    return [str(s) for s in found] if isinstance(found, (list, tuple)) else None
