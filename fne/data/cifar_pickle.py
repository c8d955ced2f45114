"""The official CIFAR python pickles, read safely: only numpy's array constructors may be unpickled."""

from __future__ import annotations

import pickle
from pathlib import Path

from fne.errors import DataError

# The only globals a CIFAR pickle needs (Python 2 official files, or numpy 1.x/2.x re-pickles).
_ALLOWED_GLOBALS = {(module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
                    for name in ("_reconstruct", "scalar")} | {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the numpy array globals, so a crafted file cannot execute code."""

    def find_class(self, module: str, name: str):
        """Resolve a global only if it is one of the numpy array constructors."""
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def read_pickle(path: Path, name: str, layout: str, expected: str = "") -> dict[str, object]:
    """One official CIFAR pickle as a dict with str keys; DataError naming the file if missing or corrupt."""
    if not path.is_file():
        raise DataError(f"missing {name} file {path}; expected {layout}")
    try:
        with path.open("rb") as f:
            # latin1 reads the official Python 2 strings as str and their numpy buffers byte for byte.
            content = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except Exception as exc:  # any unpickling failure means a truncated or foreign file
        raise DataError(f"corrupt {name} file {path}: {type(exc).__name__}: {exc}; expected "
                        f"{expected or 'a pickled dict from the official cifar-10-python archive'}") from exc
    if not isinstance(content, dict):
        raise DataError(f"corrupt {name} file {path}: expected a pickled dict, got {type(content).__name__}")
    # Official files give str keys under latin1; files re-pickled from encoding="bytes" loads give bytes.
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in content.items()}
