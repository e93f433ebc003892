"""The tqdm progress bar: one update per compiled chunk, off without a terminal, total ETA."""

import io
import sys

import pytest

import fastbias as fb
from fastbias._progress import ProgressBar, format_duration


class _TTY(io.StringIO):
    def isatty(self):
        return True


def test_bar_draws_on_a_terminal(monkeypatch):
    err = _TTY()
    monkeypatch.setattr(sys, "stderr", err)
    X, y = fb.datasets.soudry2018()
    fb.train(X, y, steps=1000, progress=True)
    out = err.getvalue()
    assert "1.00k/1.00k" in out and "100%" in out


def test_bar_is_off_without_a_terminal(capsys):
    X, y = fb.datasets.soudry2018()
    fb.train(X, y, steps=1000, progress=True)  # pytest's captured stderr is not a TTY
    assert capsys.readouterr().err == ""


def test_one_draw_per_chunk_and_total_estimate(monkeypatch):
    stream = io.StringIO()
    clock = iter([0.0, 0.0, 1.0, 2.0, 3.0])
    monkeypatch.setattr("fastbias._progress.time.perf_counter", lambda: next(clock))
    bar = ProgressBar(10**12, stream=stream)
    bar.update(0)  # the count before the first chunk (t = 0)
    assert bar.estimated_total is None
    bar.update(10**6)  # first chunk: 1e6 steps in 1 s -> 1e6 s in all
    assert bar.estimated_total == pytest.approx(1e6)
    assert "est. total 11.6 days" in stream.getvalue()
    bar.update(3 * 10**6)  # 3e6 steps in 2 s -> 1.5e6 steps/s
    assert bar.estimated_total == pytest.approx(2.0 + (10**12 - 3 * 10**6) / 1.5e6)
    bar.close()
    bar.close()  # idempotent
    draws = stream.getvalue().count("\r")
    assert 3 <= draws <= 5  # open, one per update, close: never one per step


def test_resumed_count_starts_part_way():
    stream = io.StringIO()
    bar = ProgressBar(100, stream=stream)
    bar.update(40)
    bar.update(100)
    bar.close()
    assert "100/100" in stream.getvalue()


def test_disabled_bar_writes_nothing():
    stream = io.StringIO()
    bar = ProgressBar(100, enabled=False, stream=stream)
    bar.update(0)
    bar.update(100)
    bar.close()
    assert stream.getvalue() == ""


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (4.24, "4.2s"),
        (187, "3m07s"),
        (5 * 3600 + 12 * 60, "5h12m"),
        (12.4 * 86400, "12.4 days"),
        (3.2e4 * 365.25 * 86400, "3.2e+04 years"),
        (float("nan"), "?"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_the_bar_counts_steps_for_gd_and_log_time_for_gradient_flow(monkeypatch):
    """Gradient flow's progress is the way travelled in s = log(1 + t), in thousandths, and
    its bar says so (it said "steps")."""
    from fastbias.optim import driver

    opened = []
    real = driver.ProgressBar

    def spy(total, enabled=True, stream=None, unit="steps"):
        opened.append((total, unit))
        return real(total, enabled=enabled, stream=stream, unit=unit)

    monkeypatch.setattr(driver, "ProgressBar", spy)
    X, y = fb.datasets.soudry2018()
    fb.flow(X, y, t_max=1e4, progress=True)
    fb.train(X, y, steps=100, progress=True)
    assert opened == [(1000, "thousandths of log(1+t)"), (100, "steps")]
