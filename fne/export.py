"""The fne model file: a genotype stacked into an evaluation network, saved as a plain, safe dict.

A model file is `torch.save` of a dict of plain values and tensors only (no pickled classes), so it
loads with `torch.load(weights_only=True)`::

    {"format": "fne-model", "format_version": 1, "fne_version": "0.1.0",
     "genotype": "s0s1-...|16.32.64|1.1.1", "builder": {space, C, layers, num_classes, auxiliary,
     drop_path_prob, seed}, "state_dict": {...}, "training": {...} or None, "source": {...},
     "data": {classes, num_classes, input_size [H, W], mean, std, format, path, digest} or None}

A file without "data" (written before fne recorded it) is a CIFAR-10 network: 10 classes at 32x32.

`load_model(path)` rebuilds the network from genotype and builder config (same parameter count) and
loads the stored weights (same outputs). DARTS genotypes become DARTS's evaluation network (C=36,
20 layers, reductions at 1/3 and 2/3 depth, optional auxiliary head and drop-path); NB201 genotypes
become NB201's TinyNetwork (C=16, N=5 by default).
"""

from __future__ import annotations

import logging
import pickle
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from fne.atomic import atomic_write
from fne.config_meta import DEFAULT_IMAGE_SIZE, cli, data_field, image_size_field
from fne.data.source import open_data
from fne.errors import CheckpointError, ConfigError, FneError, GenotypeError
from fne.genotopheno.spaces import SPACES, get_space
from fne.run import rundir
from fne.version import __version__

log = logging.getLogger(__name__)

FORMAT = "fne-model"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class BuilderConfig:
    """Everything besides the genotype that fixes the network's structure and its initial weights."""

    space: str = "darts"
    C: int | None = 36
    layers: int | None = 20
    num_classes: int = 10
    auxiliary: bool = False
    drop_path_prob: float = 0.0  # the training default; inert in eval mode
    seed: int = 0

    def __post_init__(self) -> None:
        hooks = SPACES[self.space]  # ConfigError naming the known spaces
        if self.auxiliary and not hooks.auxiliary_head:
            raise ConfigError(f"the {self.space} network has no auxiliary head; drop --auxiliary")
        if not 0.0 <= self.drop_path_prob < 1.0:
            raise ConfigError(f"drop_path_prob={self.drop_path_prob} must be in [0, 1)")
        for name in ("C", "layers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name}={value} must be positive")


@dataclass(frozen=True)
class ModelFile:
    """The contents of a model file: genotype, builder config, weights and where they came from."""

    genotype: str
    builder: BuilderConfig
    state_dict: dict[str, torch.Tensor] | None = None
    training: dict[str, Any] | None = None
    source: dict[str, Any] = field(default_factory=dict)
    fne_version: str = ""
    data: dict[str, Any] | None = None  # model_data(): what the network was made for (None: CIFAR-10 at 32x32)

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) of the images the network takes."""
        return tuple(self.data["input_size"]) if self.data and self.data.get("input_size") else (32, 32)


def model_data(record: dict[str, Any]) -> dict[str, Any]:
    """A model file's data record from a Dataset.describe() record: classes, input size and statistics."""
    size = record.get("image_size_used")
    input_size = [size, size] if size else list(record["image_size"])
    keys = ("classes", "num_classes", "mean", "std", "format", "path", "digest")
    return {"input_size": input_size, **{key: record[key] for key in keys if key in record}}


def _fne_version() -> str:
    return __version__


def canonical_genotype(text: str, space: str | None = None) -> tuple[str, str]:
    """(space, canonical genotype string) of a genotype string or published name; space None guesses it."""
    text = text.strip()
    named = {cell: (name, genotype) for name in SPACES for cell, genotype in get_space(name).named_genotypes().items()}
    if text in named:
        owner, genotype = named[text]
        if space not in (None, owner):
            raise ConfigError(f"{text} is a {SPACES[owner].title or owner} cell; it cannot be exported to the "
                              f"{space} space")
        return owner, genotype
    if space is not None:
        return space, get_space(space).evaluation_canonical(text)
    errors = []
    for name in SPACES:
        try:
            return canonical_genotype(text, name)
        except GenotypeError as error:
            errors.append(f"{name}: {error}")
    raise GenotypeError(f"{text!r} is neither a published cell ({', '.join(named)}) nor a genotype of any "
                        f"space ({'; '.join(errors)})")


@dataclass(frozen=True)
class ExportConfig:
    """What `fne export` writes: which cell (a run's pick or a genotype) and its evaluation network's settings."""

    pick: str = field(default="best", metadata=cli(
        "'best' (of the final Pareto front by rank-combined score) or an individual's id."))
    genotype: str | None = field(default=None, metadata=cli(
        "Export this genotype string, or a published cell (DARTS_V1, DARTS_V2, PDARTS, PC_DARTS), instead of a "
        "run's."))
    space: str | None = field(default=None, metadata=cli(
        "Space of --genotype (guessed from the string when left out).", choices=SPACES.names))
    layers: int | None = field(default=None, metadata=cli(
        "Cells in the network (DARTS, default 20) or cells per stage N (NB201, default 5)."))
    C: int | None = field(default=None, metadata=cli("Initial channels C (DARTS default 36, NB201 default 16).",
                                                     flag="--channels"))
    as_searched: bool = field(default=False, metadata=cli(
        "Keep a DARTS genotype's own stage widths and cell counts (instead of --channels/--layers)."))
    num_classes: int | None = field(default=None, metadata=cli(
        "Classes of the classifier (default: the data's: --data, else the run's, else CIFAR-10's 10)."))
    data: str | None = data_field()  # the data the network is for: its classes, input size and statistics
    image_size: int | None = image_size_field(None, "Input size the network is made for (0 or native: the "
                                                    "data's own; default: the run's, else 32).")
    auxiliary: bool | None = field(default=None, metadata=cli(
        "DARTS auxiliary head on the last reduction cell (default on for DARTS; NB201 has none)."))
    drop_path_prob: float | None = field(default=None, metadata=cli(
        "Drop-path probability for training (default 0.2 DARTS, 0 NB201).", flag="--drop-path"))
    seed: int = field(default=0, metadata=cli("Seed of the initial weights."))

    def builder(self, space: str) -> BuilderConfig:
        """The builder config of the exported network in `space`, the space's defaults where a value is None."""
        return default_builder(space, self.C, self.layers, num_classes=self.num_classes or 10, auxiliary=self.auxiliary,
                               drop_path_prob=self.drop_path_prob, seed=self.seed, as_searched=self.as_searched)


def default_builder(space: str, C: int | None = None, layers: int | None = None, *, num_classes: int = 10,
                    auxiliary: bool | None = None, drop_path_prob: float | None = None,
                    seed: int = 0, as_searched: bool = False) -> BuilderConfig:
    """A builder config with the space's evaluation defaults filled in where a value is None.

    as_searched=True keeps a DARTS genotype's own stage widths and cell counts instead of C and layers.
    """
    hooks = SPACES[space]  # the space's evaluation-network defaults
    if as_searched and (C is not None or layers is not None):
        raise ConfigError("as_searched keeps the genotype's own widths and cell counts; drop C and layers")
    default_C, default_layers = hooks.searched_size if as_searched else hooks.evaluation_size
    return BuilderConfig(
        space=space,
        C=default_C if C is None else C,
        layers=default_layers if layers is None else layers,
        num_classes=num_classes,
        auxiliary=hooks.auxiliary_head if auxiliary is None else auxiliary,
        drop_path_prob=hooks.drop_path_prob if drop_path_prob is None else drop_path_prob,
        seed=seed,
    )


def build_model(genotype: str, builder: BuilderConfig) -> nn.Module:
    """The evaluation network of a genotype string under a builder config (seeded initial weights)."""
    return get_space(builder.space).evaluation_network(
        genotype, C=builder.C, layers=builder.layers, num_classes=builder.num_classes, auxiliary=builder.auxiliary,
        drop_path_prob=builder.drop_path_prob, seed=builder.seed)


def model_payload(model_file: ModelFile) -> dict[str, Any]:
    """The plain dict written to disk (only str/int/float/bool/None, lists, dicts and tensors)."""
    state = None
    if model_file.state_dict is not None:
        state = {key: value.detach().to("cpu").clone() for key, value in model_file.state_dict.items()}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fne_version": model_file.fne_version or _fne_version(),
        "genotype": model_file.genotype,
        "builder": asdict(model_file.builder),
        "state_dict": state,
        "training": model_file.training,
        "source": dict(model_file.source),
        "data": model_file.data,
    }


def atomic_torch_save(payload: Any, path: str | Path) -> Path:
    """torch.save atomically: readers never see half a file."""
    return atomic_write(path, lambda stream: torch.save(payload, stream))


def save_model(path: str | Path, genotype: str, builder: BuilderConfig, model: nn.Module | None = None, *,
               training: dict[str, Any] | None = None, source: dict[str, Any] | None = None,
               data: dict[str, Any] | None = None) -> Path:
    """Write a model file; without `model` the seeded initial network's weights are stored."""
    _, genotype = canonical_genotype(genotype, builder.space)
    if data is not None and data.get("num_classes", builder.num_classes) != builder.num_classes:
        raise ConfigError(f"{builder.num_classes} classes for data with {data['num_classes']}: the classifier's "
                          "outputs are the data's classes")
    if model is None:
        model = build_model(genotype, builder)
    model_file = ModelFile(genotype, builder, model.state_dict(), training, source or {}, data=data)
    return atomic_torch_save(model_payload(model_file), path)


def torch_load_safely(path: str | Path, what: str) -> Any:
    """torch.load(weights_only=True) turning every way a file can be bad into one CheckpointError."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{what} {path} is a folder; expected a file written by fne")
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's text is a paragraph of advice about weights_only; only the refused class is worth naming.
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
        detail = f"it pickles {refused.group(1)}" if refused else "it holds pickled objects or is corrupt"
        raise CheckpointError(f"{what} {path} is not a safe fne file ({detail}); expected a file written by "
                              "fne, which holds plain values and tensors only") from None
    except Exception as error:  # torch.load of random bytes raises IndexError, KeyError, EOFError... anything
        raise CheckpointError(f"{what} {path} is truncated or not a torch file ({type(error).__name__} while "
                              "reading it); expected a file written by fne") from None


def read_model_file(path: str | Path) -> ModelFile:
    """Read and validate a model file; any missing, truncated, foreign or newer file is a CheckpointError."""
    payload = torch_load_safely(path, "model file")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an fne model file (expected a dict with format={FORMAT!r}; "
                              "write one with `fne export`)")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"model file {path} has format version {version!r} (written by fne "
                              f"{payload.get('fne_version', '?')}); this fne {_fne_version()} reads version "
                              f"{FORMAT_VERSION}")
    try:
        builder = BuilderConfig(**payload["builder"])
        genotype = str(payload["genotype"])
        canonical_genotype(genotype, builder.space)
        state = payload["state_dict"]
        if state is not None and not (isinstance(state, dict)
                                      and all(isinstance(v, torch.Tensor) for v in state.values())):
            raise CheckpointError("state_dict is not a dict of tensors")
    except (KeyError, TypeError, FneError) as error:
        raise CheckpointError(f"model file {path} is damaged: {error}") from None
    if payload.get("fne_version") != _fne_version():
        log.info("model file %s was written by fne %s (this is %s); format %d is shared", path,
                 payload.get("fne_version"), _fne_version(), FORMAT_VERSION)
    return ModelFile(genotype, builder, state, payload.get("training"), payload.get("source") or {},
                     str(payload.get("fne_version", "")), payload.get("data"))


def model_from_file(model_file: ModelFile, path: str | Path = "<memory>") -> nn.Module:
    """Build the network of a ModelFile and load its weights (strictly: every key, every shape)."""
    model = build_model(model_file.genotype, model_file.builder)
    if model_file.state_dict is not None:
        try:
            model.load_state_dict(model_file.state_dict, strict=True)
        except RuntimeError as error:
            first = str(error).strip().splitlines()[0]
            raise CheckpointError(f"model file {path}: weights do not fit the rebuilt network "
                                  f"({first[:200]})") from None
    return model


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the network stored in an fne model file, with its weights, in eval mode on `device`."""
    model = model_from_file(read_model_file(path), path)
    return model.to(device).eval()


def export_program(model: nn.Module, example: torch.Tensor | None = None, dynamic_batch: bool = True):
    """A torch.export ExportedProgram of the eval-mode network: runs without fne (torch.export.load)."""
    model = model.eval()
    if example is None:
        example = torch.zeros(2, 3, 32, 32, device=next(model.parameters()).device)
    dynamic_shapes = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}} if dynamic_batch else None
    return torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes)


def export_data(config: ExportConfig, run_dir: str | Path | None = None) -> dict[str, Any] | None:
    """The data an exported network is for: --data's, else the run's record, else the shipped sample's
    (CIFAR-10); None when only --num-classes says what it is."""
    if config.data is not None:
        size = DEFAULT_IMAGE_SIZE if config.image_size is None else config.image_size
        data = model_data(open_data(config.data, size).describe())
    elif run_dir is not None and rundir.read_config(Path(run_dir)).get("dataset"):
        data = model_data(rundir.read_config(Path(run_dir))["dataset"])
    elif config.num_classes is not None:
        return None
    else:
        data = model_data(open_data(None, DEFAULT_IMAGE_SIZE).describe())
    if config.image_size and config.data is None:  # the network made for another input size than the data's
        data["input_size"] = [config.image_size, config.image_size]
    if config.num_classes is not None and config.num_classes != data["num_classes"]:
        raise ConfigError(f"--num-classes {config.num_classes} but the data has {data['num_classes']} classes "
                          f"({data.get('path')}); leave --num-classes out")
    return data


# ---------------------------------------------------------------- picking a cell out of a run directory
def genotype_from_run(run_dir: str | Path, pick: str = "best") -> tuple[str, str, dict[str, Any]]:
    """(space, genotype, source record) of an individual: the run's best (rundir.best_of_run), or an id."""
    run_dir = Path(run_dir)
    config = rundir.read_config(run_dir)
    space = rundir.run_space(config)
    row = rundir.best_of_run(run_dir, config) if pick == "best" else rundir.individual_of_run(run_dir, pick)
    record: dict[str, Any] = {"run_dir": str(run_dir.resolve()), "pick": pick, "id": int(row["id"]),
                              "generation": int(row["generation"])}
    for name in (*rundir.run_objectives(config, row.index), "params", "flops", "rank_combined", "true_accuracy"):
        if name in row and pd.notna(row[name]):
            record[name] = float(row[name])
    return space, str(row["genotype"]), record
