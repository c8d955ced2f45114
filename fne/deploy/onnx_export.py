"""ONNX export of an evaluation network, checked in onnxruntime against PyTorch before the file is written.

    report = write_onnx(model, "cell.onnx", images)   # DeployError if onnxruntime's logits differ by > 1e-4

The network is exported in eval mode (BatchNorm with running statistics, no drop-path; the auxiliary head,
used only in training, is not part of the graph) through torch.onnx's torch.export path (the dynamo
exporter, which needs onnxscript), with a dynamic batch dimension. The ONNX bytes are loaded into an
onnxruntime session, run on real images, and compared with PyTorch's logits; only a file within the
tolerance is written (atomically), so a file at the path is always one that passed.

onnx, onnxscript and onnxruntime are the optional `[onnx]` extra; without them this is a one-line
ConfigError naming the install command.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fne.atomic import atomic_write
from fne.errors import ConfigError, DeployError

ONNX_MISSING = 'ONNX export needs onnx, onnxscript and onnxruntime: pip install -e ".[onnx]" (or pip install ' \
               '"fne[onnx]")'
DEFAULT_TOLERANCE = 1e-4  # max |logit difference|: float32 kernels of the two runtimes differ by ~1e-6 relative
INPUT_NAME, OUTPUT_NAME = "images", "logits"
MAX_BATCH = 4096


def require_onnx() -> Any:
    """The onnxruntime module, after checking that the `[onnx]` extra is installed (ConfigError if not)."""
    try:
        import onnx  # noqa: F401  (torch.onnx's exporter imports them; checked here for a clear message)
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError:
        raise ConfigError(ONNX_MISSING) from None
    return onnxruntime


@dataclass(frozen=True)
class OnnxCheck:
    """What the onnxruntime check found: images compared, largest logit difference, tolerance, versions."""

    images: int
    max_abs_difference: float
    tolerance: float
    opset: int
    onnxruntime_version: str

    @property
    def passed(self) -> bool:
        """True when the largest difference is within the tolerance."""
        return self.max_abs_difference <= self.tolerance


def onnx_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    """The serialised ONNX model of the eval-mode network, batch dimension dynamic (torch.onnx, dynamo path)."""
    require_onnx()
    model = model.eval()
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    # torch.onnx logs a warning per torchvision op it cannot register when torchvision is absent: not ours.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # torch.export's pytree warns of its own deprecations (LeafSpec) while tracing: not the user's concern.
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.onnx.export(model, (example,), dynamo=True, verbose=False, input_names=[INPUT_NAME],
                                        output_names=[OUTPUT_NAME], dynamic_shapes={"x": {0: batch}})
    except Exception as error:  # torch.onnx raises its own types; the first line says what failed
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DeployError(f"torch.onnx could not export the network ({first[:200]})") from None
    return program.model_proto.SerializeToString()


def session(model_bytes: bytes, threads: int | None = None) -> Any:
    """An onnxruntime CPU session of ONNX bytes with `threads` intra-op threads (default: torch's count)."""
    onnxruntime = require_onnx()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: its warnings about unused initialisers are noise here
    return onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def check_onnx(model_bytes: bytes, model: nn.Module, images: torch.Tensor,
               tolerance: float = DEFAULT_TOLERANCE) -> OnnxCheck:
    """Run the ONNX model in onnxruntime and PyTorch on the same images; the largest logit difference."""
    import onnx

    onnxruntime = require_onnx()
    runtime = session(model_bytes)
    images = images.detach().to("cpu", torch.float32)
    with torch.inference_mode():
        expected = model.eval().to("cpu")(images).numpy()
    produced = runtime.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})[0]
    if produced.shape != expected.shape:
        raise DeployError(f"onnxruntime returned logits of shape {produced.shape}, PyTorch {expected.shape}")
    difference = float(np.max(np.abs(produced - expected))) if expected.size else 0.0
    opset = max((entry.version for entry in onnx.load_from_string(model_bytes).opset_import
                 if entry.domain in ("", "ai.onnx")), default=0)
    return OnnxCheck(len(images), difference, tolerance, opset, onnxruntime.__version__)


def write_onnx(model: nn.Module, path: str | Path, images: torch.Tensor,
               tolerance: float = DEFAULT_TOLERANCE) -> tuple[bytes, OnnxCheck]:
    """Export, check in onnxruntime on `images`, then write the file; DeployError (nothing written) on a mismatch."""
    model = model.eval().to("cpu")
    # Two images: torch.export specialises a dimension whose example is 1, and the batch must stay dynamic.
    model_bytes = onnx_bytes(model, images[:1].to("cpu").repeat(2, 1, 1, 1))
    check = check_onnx(model_bytes, model, images, tolerance)
    if not check.passed:
        raise DeployError(f"onnxruntime's logits differ from PyTorch's by up to {check.max_abs_difference:.3g} on "
                          f"{check.images} images, above the tolerance {tolerance:g}; {path} was not written")
    atomic_write(path, lambda stream: stream.write(model_bytes))
    return model_bytes, check
