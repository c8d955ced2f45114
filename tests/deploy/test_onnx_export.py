"""ONNX export: the tiny network's file runs in onnxruntime at any batch with PyTorch's logits, without the
auxiliary head; a mismatch writes nothing; the CLI's refusals are one line (exit 2)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from fne.cli import cli, run_command
from fne.data.cifar10 import heuristic_batch
from fne.deploy import onnx_export
from fne.deploy.onnx_export import OnnxCheck, session, write_onnx
from fne.errors import DeployError
from fne.export import build_model, default_builder

NB201_BEST = "C+CC+kCC"
needs_onnx = pytest.mark.skipif(
    any(__import__("importlib").util.find_spec(name) is None for name in ("onnx", "onnxruntime", "onnxscript")),
    reason='onnx, onnxscript and onnxruntime are the optional [onnx] extra: pip install -e ".[onnx]"')


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return heuristic_batch(None, 8, seed=0)  # real CIFAR-10 images shipped with fne


def _tiny_darts() -> torch.nn.Module:
    """DARTS_V2 at C=4, 5 cells, with its auxiliary head, weights and BN statistics moved off the init."""
    model = build_model("s0s1-s0s1-s1k0-k0d2|m0m1-k2m1-m0k2-k2m1|16.32.64|1.1.1", default_builder("darts", 4, 5))
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, 32, 32))
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def exported(images, tmp_path_factory):
    """The tiny DARTS network, written to ONNX once: (model, path, bytes, check)."""
    model, path = _tiny_darts(), tmp_path_factory.mktemp("onnx") / "m.onnx"
    return (model, path, *write_onnx(model, path, images))


@needs_onnx
def test_round_trip_matches_pytorch_at_any_batch_without_the_auxiliary_head(exported, images):
    import onnx

    model, path, model_bytes, check = exported
    assert model.auxiliary is not None
    assert check.passed and check.images == 8 and check.max_abs_difference <= 1e-4
    assert path.read_bytes() == model_bytes
    graph = onnx.load(path).graph
    assert not [t.name for t in graph.initializer if "auxiliary" in t.name]
    assert [o.name for o in graph.output] == ["logits"]
    runtime = session(path.read_bytes(), threads=1)
    for batch in (1, 3, 8):  # dynamic batch: sizes other than the export's example of 2
        x = images[:batch]
        with torch.inference_mode():
            expected = model(x).numpy()
        produced = runtime.run(["logits"], {"images": x.numpy()})[0]
        assert produced.shape == (batch, 10)
        np.testing.assert_allclose(produced, expected, rtol=0, atol=1e-4)


@needs_onnx
def test_a_mismatch_writes_nothing(tmp_path, images, monkeypatch, exported):
    monkeypatch.setattr(onnx_export, "onnx_bytes", lambda *a, **k: exported[2])
    monkeypatch.setattr(onnx_export, "check_onnx", lambda *a, **k: OnnxCheck(8, 0.5, 1e-4, 18, "x"))
    path = tmp_path / "m.onnx"
    with pytest.raises(DeployError, match="differ from PyTorch's by up to 0.5.*was not written"):
        write_onnx(_tiny_darts(), path, images)
    assert not path.exists() and list(tmp_path.iterdir()) == []


@needs_onnx
def test_the_check_sees_a_different_network(images, exported):
    check = onnx_export.check_onnx(exported[2], _tiny_darts(), images)  # the same cell with other weights
    assert not check.passed and check.max_abs_difference > 1e-2


def _fne(args, capsys):
    code = run_command(cli, args, prog_name="fne")
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@needs_onnx
def test_cli_writes_checks_and_times_then_refuses_to_replace(tmp_path, capsys):
    args = ["export", "--genotype", NB201_BEST, "--channels", "4", "--layers", "1", "-o", str(tmp_path / "m.pt"),
            "--onnx", str(tmp_path / "m.onnx")]
    code, out, err = _fne(args, capsys)
    assert code == 0, err
    assert "max |logit difference|" in out and "<= 0.0001" in out
    assert "PyTorch" in out and "onnxruntime" in out and "ms/image at batch 1" in out and "images/s at batch 64" in out
    assert "1 thread" in out
    code, out, err = _fne(args[:-4] + ["-o", str(tmp_path / "n.pt"), "--onnx", str(tmp_path / "m.onnx")], capsys)
    assert code == 2 and err.count("\n") == 1 and "--onnx" in err and "already exists" in err and "--force" in err
    assert not (tmp_path / "n.pt").exists()  # refused before any work


def test_cli_names_the_missing_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    code, out, err = _fne(["export", "--genotype", NB201_BEST, "-o", str(tmp_path / "m.pt"), "--onnx",
                           str(tmp_path / "m.onnx")], capsys)
    assert code == 2 and err.count("\n") == 1 and 'pip install -e ".[onnx]"' in err
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "m.onnx").exists()
