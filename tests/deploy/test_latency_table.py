"""The latency table: written atomically under fne's cache, keyed by device, torch and threads, refused when
corrupt or foreign (one line, exit 2), extended without remeasuring what it holds."""

from __future__ import annotations

import json

import pytest
import torch

from fne.cli import cli, run_command
from fne.deploy.latency_table import LatencyTable, TableKey, fill_table, load_table, read_table, table_path, write_table
from fne.errors import DeployError
from fne.genotopheno.spaces import get_space
from tests.deploy.fake_tables import KEY, counting_table

FAST = ["--min-run-time", "0.01", "--passes", "1", "--no-progress"]


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FNE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_file_name_holds_the_key():
    names = {TableKey("cpu", "Intel(R) Xeon(R) 8481C", "2.13.0+cpu", 1).file_name(),
             TableKey("cpu", "Intel(R) Xeon(R) 8481C", "2.13.0+cpu", 2).file_name(),
             TableKey("cpu", "AMD EPYC 9654", "2.13.0+cpu", 1).file_name(),
             TableKey("cpu", "Intel(R) Xeon(R) 8481C", "2.12.1+cpu", 1).file_name(),
             TableKey("cuda", "NVIDIA H100 80GB HBM3", "2.13.0+cpu", 1).file_name()}
    assert len(names) == 5
    assert TableKey("cpu", "Intel(R) Xeon(R) 8481C", "2.13.0+cpu", 2).file_name() == \
        "cpu-intel-r-xeon-r-8481c-torch2.13.0_cpu-threads2.json"
    assert TableKey.current("cpu", 3).threads == 3 and TableKey.current("cpu").torch_version == torch.__version__


def test_round_trip_and_atomic_write(cache):
    table = counting_table(get_space("nb201"), "params", offset=1.0)
    path = write_table(table, table_path(KEY))
    assert path.parent == cache / "latency" and [p.name for p in path.parent.iterdir()] == [path.name]
    again = load_table(KEY)
    assert again.key == KEY and again.rows == table.rows


def test_a_table_of_another_key_is_refused(cache):
    write_table(counting_table(get_space("nb201"), "params", offset=1.0), table_path(KEY))
    other = TableKey("cpu", "test cpu", torch.__version__, 2)
    table_path(KEY).rename(table_path(other))  # a file that claims to be the 2-thread table
    with pytest.raises(DeployError, match="was measured for .*threads=1.*not.*threads=2"):
        load_table(other)
    with pytest.raises(DeployError, match="no latency table at .*fne latency-table --device cpu --threads 1"):
        load_table(KEY)


@pytest.mark.parametrize("content", ["{not json", json.dumps({"format": "other"}), json.dumps(
    {"format": "fne-latency-table", "format_version": 1, "device": "cpu", "device_name": "test cpu",
     "torch_version": torch.__version__, "threads": 1,
     "rows": [{"kind": "nb201/stem", "resolution": 32, "C": 16, "C_in": 0, "stride": 1, "ms": "nan",
               "iqr_ms": 0}]})])
def test_a_corrupt_table_is_one_deploy_error(cache, content):
    path = table_path(KEY)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(DeployError, match="is corrupt .*--force") as error:
        read_table(path, KEY)
    assert "\n" not in str(error.value)


def test_fill_measures_only_missing_parts_and_keeps_the_fastest_pass():
    table, calls = LatencyTable(KEY), []

    def measure(part):
        calls.append(part)
        return 1.0 + calls.count(part) % 3, 0.0  # a part's passes give 2, 3, 1 ms: the smallest must stay

    parts = counting_table(get_space("nb201"), "params", offset=1.0).rows.keys()
    assert fill_table(table, parts, measure, passes=3) == len(parts)
    assert len(calls) == 3 * len(parts)
    assert all(table.rows[part][0] == 1.0 for part in parts)
    assert calls[len(parts):2 * len(parts)] != calls[:len(parts)]  # later passes go in another order
    assert fill_table(table, parts, measure) == 0 and len(calls) == 3 * len(parts)


def _fne(args, capsys):
    code = run_command(cli, args, prog_name="fne")
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_command_measures_once_then_reuses_the_cache(cache, capsys):
    code, out, _ = _fne(["latency-table", "--space", "nb201", *FAST], capsys)
    assert code == 0 and "measured now" in out and "nb201 at 32x32" in out
    path = next((cache / "latency").iterdir())
    assert "threads1" in path.name and path.name.startswith("cpu-")
    first = read_table(path)
    assert len(first.rows) == 22 + 10 and all(ms > 0 for ms, _ in first.rows.values()) and first.clock
    code, out, _ = _fne(["latency-table", "--space", "nb201", *FAST], capsys)
    assert code == 0 and "; 0 measured now" in out
    assert read_table(path).rows == first.rows


def test_command_refuses_a_corrupt_table_unless_forced(cache, capsys):
    path = table_path(TableKey.current("cpu", 1))
    path.parent.mkdir(parents=True)
    path.write_text("garbage")
    code, out, err = _fne(["latency-table", "--space", "nb201", *FAST], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: latency table") and "corrupt" in err
    assert path.read_text() == "garbage"
    code, out, err = _fne(["latency-table", "--space", "nb201", "--force", *FAST], capsys)
    assert code == 0 and len(read_table(path).rows) == 22 + 10
