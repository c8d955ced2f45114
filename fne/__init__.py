"""fne: Fast Neural Evolution, training-free evolutionary neural architecture search."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fne")
except PackageNotFoundError:  # running from a source tree that was not pip-installed
    __version__ = "0.1.0"


def load_model(path, device="cpu"):
    """Rebuild the network stored in an fne model file (see fne.export.load_model)."""
    from fne.export import load_model as _load_model

    return _load_model(path, device)
