"""Suite-wide test settings."""

import os

from fne.threads import prepare_openmp

# Before torch loads OpenMP (fne/threads.py); and the commands the tests invoke apply the threading rule,
# which would otherwise raise the suite's torch threads to every core for the rest of the session.
prepare_openmp()
os.environ.setdefault("FNE_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """One torch thread for the whole suite: the tiny test nets gain nothing from more, and two OpenMP
    threads on a busy 2-core machine spin-wait at every barrier (measured 10-30x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
