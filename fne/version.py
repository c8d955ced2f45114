"""fne's version: the installed distribution's, or the source tree's when it was not pip-installed."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fne")
except PackageNotFoundError:  # running from a source tree that was not pip-installed
    __version__ = "0.1.0"
