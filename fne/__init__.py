"""fne: Fast Neural Evolution, training-free evolutionary neural architecture search."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fne")
except PackageNotFoundError:  # running from a source tree that was not pip-installed
    __version__ = "0.1.0"
