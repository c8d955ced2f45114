"""Click options shared by every fne command: `--threads` (the threading rule) and `--device`.

Importing this module does not import torch (see fne/threads.py for why that matters): the device type
checks only the spelling; whether CUDA is there is fne.device.resolve_device's job at run time.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

from fne.threads import THREADS_ENV, apply_thread_rule

F = TypeVar("F", bound=Callable[..., Any])

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
DEVICE_METAVAR = "[auto|cpu|cuda|cuda:N]"


class DeviceType(click.ParamType):
    """A device name: auto, cpu, cuda or cuda:N (case and surrounding spaces ignored); normalised to lower case."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The normalised device string, or a one-line usage error naming the value."""
        text = str(value).strip().lower()
        if not DEVICE_PATTERN.fullmatch(text):
            self.fail(f"{value!r} is not a device; expected auto, cpu, cuda or cuda:N (N = 0, 1, ...)", param, ctx)
        return text

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        """How --help shows the accepted values."""
        return DEVICE_METAVAR


DEVICE = DeviceType()


class ImageSizeType(click.ParamType):
    """An image size: a side in pixels (4..4096), or 0 / native for the dataset's own size (given as 0)."""

    name = "image_size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """The side in pixels, 0 for native, or a one-line usage error naming the value."""
        text = str(value).strip().lower()
        if text == "native":
            return 0
        if not text.isdigit() or not (int(text) == 0 or 4 <= int(text) <= 4096):
            self.fail(f"{value!r} is not an image size; expected N pixels (4..4096), or 0 / native for the "
                      "dataset's own size", param, ctx)
        return int(text)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        """How --help shows the accepted values."""
        return "[N|native]"


IMAGE_SIZE = ImageSizeType()


def device_option(function: F) -> F:
    """`--device auto|cpu|cuda|cuda:N` (default auto: CUDA when available), passed as `device`."""
    return click.option("--device", type=DEVICE, default="auto", show_default=True,
                        help="auto (CUDA when available), cpu, cuda or cuda:N.")(function)


def _apply_threads(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if not ctx.resilient_parsing:  # not while the shell completes a command line
        apply_thread_rule(value)
    return value


def threads_option(function: F) -> F:
    """`--threads N` (or FNE_THREADS=N): applies fne's threading rule (fne/threads.py) first; not passed on."""
    # Eager, so it runs before any other option's conversion could import torch.
    return click.option("--threads", type=click.IntRange(min=1), default=None, envvar=THREADS_ENV,
                        show_envvar=True, is_eager=True, expose_value=False, callback=_apply_threads,
                        help="torch CPU threads  [default: the cores this process may use]")(function)


# ---------------------------------------------------------------- options declared once, on the config dataclass
# Fields carry their option in metadata made by fne.config_meta.cli(...); the spec keys are documented there.
def _click_type(kind: Any, spec: dict[str, Any]) -> Any:
    if spec.get("device"):
        return DEVICE
    if spec.get("image_size"):
        return IMAGE_SIZE
    if spec.get("path"):
        return click.Path(path_type=str)
    choices = spec.get("choices")
    if choices is not None:
        return click.Choice(list(choices() if callable(choices) else choices))
    bounds = {"min": spec.get("min"), "max": spec.get("max"), "min_open": spec.get("min_open", False),
              "max_open": spec.get("max_open", False)}
    if kind in (int, float) and bounds["min"] is None and bounds["max"] is None:
        return kind
    if kind is int:
        return click.IntRange(**bounds)
    if kind is float:
        return click.FloatRange(**bounds)
    return spec.get("type", str)


def _field_kind(annotation: Any) -> Any:
    text = str(annotation)
    for kind in (bool, int, float):
        if text.startswith(kind.__name__):
            return kind
    return str


def flag_of(field: Any) -> str:
    """The CLI flag of a config field: its metadata's `flag`, else --field-name."""
    return field.metadata["cli"].get("flag", "--" + field.name.replace("_", "-"))


def param_of(field: Any) -> str:
    """The click parameter name of a config field's option."""
    return flag_of(field).lstrip("-").replace("-", "_")


def config_options(config_class: Any, exclude: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Decorator: one click option per `cli(...)` field of a config dataclass, defaults and help from the field."""
    def decorate(function: F) -> F:
        for field in reversed(dataclasses.fields(config_class)):
            if "cli" not in field.metadata or field.name in exclude:
                continue
            spec = field.metadata["cli"]
            tuple_field = "tuple" in str(field.type)
            default = field.default if field.default is not dataclasses.MISSING else None
            help_text = spec["help"] + ("  [default: per search space]" if spec.get("per_space") else "")
            kwargs: dict[str, Any] = {"help": help_text, "hidden": spec.get("hidden", False)}
            if _field_kind(field.type) is bool:  # --name/--no-name
                flag = flag_of(field)
                function = click.option(f"{flag}/--no-{flag[2:]}", param_of(field), default=default,
                                        show_default=default is not None, help=help_text,
                                        hidden=kwargs["hidden"])(function)
                continue
            if tuple_field and spec.get("multiple"):
                kwargs.update(multiple=True, type=_click_type(str, spec), default=default or (),
                              show_default=bool(default))
            elif tuple_field:
                kwargs.update(type=str, default=",".join(default) if default else None, show_default=True)
            else:
                kwargs.update(type=_click_type(_field_kind(field.type), spec), default=default,
                              show_default=default is not None)
            function = click.option(flag_of(field), *spec.get("aliases", ()), param_of(field), **kwargs)(function)
        return function

    return decorate


def config_values(config_class: Any, options: dict[str, Any], exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The config fields given by `config_options`' parameters (comma lists split into tuples)."""
    values = {}
    for field in dataclasses.fields(config_class):
        if "cli" not in field.metadata or field.name in exclude:
            continue
        value = options[param_of(field)]
        if "tuple" in str(field.type) and isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        elif isinstance(value, list | tuple):
            value = tuple(value)
        values[field.name] = value
    return values
