"""Exception families: each names the bad input and what was expected, so the CLI can print one line."""


class FneError(Exception):
    """Base class of every error fne raises on bad input."""


class GenotypeError(FneError, ValueError):
    """A genotype string or object is malformed."""


class DataError(FneError):
    """A data folder, file or ground-truth table is missing or corrupt."""


class CheckpointError(FneError):
    """A run directory, checkpoint or model file is missing, corrupt or foreign."""


class ConfigError(FneError, ValueError):
    """A configuration value is out of range or inconsistent."""


class OutputError(FneError):
    """An output file or folder cannot be written, or writing it would replace results without --force."""


class DeployError(FneError):
    """An ONNX file fails its onnxruntime check, or a latency table is missing, corrupt or lacks an entry."""
