"""Shared fixtures and the tolerances the tests use (in one place)."""

import contextlib
import os
import signal
import threading
import time

import numpy as np
import pytest

import fastbias as fb

# Compiled kernel vs NumPy reference: same arithmetic up to float64 round-off.
KERNEL_RTOL = 1e-12


@pytest.fixture(scope="session")
def soudry_data():
    return fb.datasets.soudry2018()


def random_separable(n, d, seed, margin=0.05):
    """Gaussian data labelled by a random direction, pushed off the separator."""
    return fb.datasets.separable_gaussian(n, d, margin=margin, seed=seed)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def _listening_for_ctrl_c() -> bool:
    """Whether a run's chunk loop is listening for Ctrl-C now (its SIGINT handler installed)."""
    from fastbias.optim.driver import InterruptFlag

    handler = signal.getsignal(signal.SIGINT)
    return isinstance(getattr(handler, "__self__", None), InterruptFlag)


@contextlib.contextmanager
def ctrl_c_while_running(deadline: float = 300.0):
    """Press Ctrl-C (SIGINT to this process) once the run started in the block is in its chunk
    loop, i.e. once the driver's SIGINT handler is installed (``optim/driver.InterruptFlag``).

    A timer (SIGINT after 0.3-0.5 s) races with the run's start: a SIGINT that comes while the
    run is still planning, loading or compiling its kernel (seconds on a fresh install or a
    loaded machine) is a KeyboardInterrupt outside the run, and pytest stops the whole session
    on it. The signal still arrives asynchronously, from another thread, usually while the
    first chunk's kernel runs. If the run never listens within ``deadline`` seconds the SIGINT
    is sent anyway, so the test fails instead of running on."""
    stop = threading.Event()
    sent: list[bool] = []  # [True] once sent while the run listened, [False] if sent late

    def press() -> None:
        end = time.monotonic() + deadline
        while not stop.is_set():
            listening = _listening_for_ctrl_c()
            if listening or time.monotonic() > end:
                sent.append(listening)
                os.kill(os.getpid(), signal.SIGINT)
                return
            stop.wait(0.002)

    thread = threading.Thread(target=press, daemon=True)
    thread.start()
    try:
        yield
    except KeyboardInterrupt as exc:
        if sent == [False]:
            msg = f"the run did not listen for Ctrl-C within {deadline:g} s"
            raise AssertionError(msg) from exc
        raise
    finally:
        stop.set()
        thread.join()
    assert sent == [True], "Ctrl-C was never pressed: the run did not listen for it"
