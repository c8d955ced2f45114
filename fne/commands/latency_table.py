"""`fne latency-table`: measure every part of the search spaces on one device, once, into fne's cache."""

from __future__ import annotations

import time

import click

from fne.cli_options import DEVICE, IMAGE_SIZE, threads_option
from fne.config_meta import DEFAULT_IMAGE_SIZE
from fne.errors import ConfigError


def _layout_spaces() -> list[str]:
    from fne.deploy.latency_parts import LATENCY_LAYOUTS
    from fne.genotopheno.spaces import SPACES

    return [name for name in SPACES if name in LATENCY_LAYOUTS]


@click.command("latency-table")
@click.option("--device", type=DEVICE, default="cpu", show_default=True,
              help="The device whose latencies the table holds (auto: CUDA when available).")
@threads_option
@click.option("--space", "spaces", multiple=True,
              help="Measure this space's parts (repeatable)  [default: every space with a latency layout]")
@click.option("--image-size", "image_sizes", type=IMAGE_SIZE, multiple=True,
              help=f"Input side the searches run at (repeatable)  [default: {DEFAULT_IMAGE_SIZE}]")
@click.option("--min-run-time", type=click.FloatRange(min=0.01), default=0.1, show_default=True,
              help="Seconds of timed calls per part and pass (torch.utils.benchmark blocked_autorange).")
@click.option("--passes", type=click.IntRange(min=1), default=3, show_default=True,
              help="Interleaved passes over the parts; each keeps its fastest median (load only adds time).")
@click.option("--force", is_flag=True, help="Measure afresh, replacing an existing (or corrupt) table.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def latency_table(device: str, spaces: tuple[str, ...], image_sizes: tuple[int, ...], min_run_time: float,
                  passes: int, force: bool, progress: bool) -> None:
    """Time every op of the spaces at every width, stride and resolution a search can produce, at batch 1.

    The table is keyed by the device's hardware, the torch version and the thread count (--threads), kept
    under fne's cache folder, and extended, never remeasured, when asked for more spaces or image sizes.
    `fne search --max-latency-ms` and `--extra-objective log_latency` predict latencies from it.
    """
    import torch
    from tqdm import tqdm

    from fne.deploy.latency_model import part_timer, space_parts
    from fne.deploy.latency_table import LatencyTable, TableKey, fill_table, read_table, table_path, write_table
    from fne.deploy.timing import clock_name
    from fne.device import resolve_device
    from fne.genotopheno.spaces import get_space

    names = spaces or tuple(_layout_spaces())
    sizes = image_sizes or (DEFAULT_IMAGE_SIZE,)
    if 0 in sizes:
        raise ConfigError("--image-size must name the side in pixels the searches run at (not native)")
    target = resolve_device(device)
    key = TableKey.current(target)
    path = table_path(key)
    fresh = LatencyTable(key, min_run_time=min_run_time, passes=passes, clock=clock_name(target))
    table = fresh if force or not path.exists() else read_table(path, key)
    todo = table.missing(part for name in names for part in space_parts(get_space(name), sizes))
    timers = {name: part_timer(get_space(name), target, min_run_time) for name in names}
    start = time.process_time()
    bar = tqdm(total=passes * len(todo), desc="latency table", unit="part", disable=not progress, leave=False)
    # One measurement over every space's parts, so that each space's timings spread over the whole of it.
    fill_table(table, todo, lambda part: timers[part.kind.split("/")[0]](part), path, passes,
               progress=lambda part: bar.update())
    bar.close()
    if not path.exists():  # nothing was missing from a new table (no parts asked for): still write it
        write_table(table, path)
    threads = f"{key.threads} thread{'s' if key.threads > 1 else ''}"
    click.echo(f"{path}: {len(table.rows)} parts ({', '.join(names)} at "
               f"{', '.join(f'{s}x{s}' for s in sizes)}) on {key.device} ({key.device_name}), torch "
               f"{torch.__version__}, {threads}; {len(todo)} measured now in {time.process_time() - start:.1f} CPU-s")
