"""`fastbias reproduce`: every target's --quick form holds its claims and writes its files.

Each registered target runs in its reduced form; every claim must come out as documented
(PASS, or FAIL only where the target marks a documented finding that the paper's claim does
not hold under its stated settings). The framework itself is tested on a small target
registered here: verdict files, the index page, Ctrl-C and resume.
"""

import json
import math

import numpy as np
import pytest
from conftest import ctrl_c_while_running

import fastbias as fb
from fastbias import experiments
from fastbias.cli import main
from fastbias.experiments import claims as C
from fastbias.experiments._framework import TARGETS, Outcome, target

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_quick_target_holds_its_claims(name, tmp_path):
    report = experiments.reproduce(name, quick=True, out=tmp_path)
    assert report.claims, f"{name} checks no claim"
    wrong = [f"{c.claim}: {c.verdict} (measured {c.measured}, {c.tolerance}; {c.note})"
             for c in report.claims if not c.as_expected]  # fmt: skip
    assert not wrong, "\n".join(wrong)
    pngs = [f for f in report.files if f.suffix == ".png"]
    csvs = [f for f in report.files if f.suffix == ".csv"]
    assert pngs and csvs
    for f in pngs:
        assert f.read_bytes()[:8] == PNG
    for f in csvs:
        with f.open() as fh:
            header = fh.readline().strip().split(",")
            rows = fh.readlines()
        assert header and rows, f"{f.name} is empty"
        for row in rows:
            for cell in row.strip().split(","):
                assert cell.lower() not in ("inf", "-inf", "nan"), f"{f.name}: {row}"
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    assert verdict["target"] == name and verdict["quick"] is True
    assert len(verdict["claims"]) == len(report.claims)
    assert verdict["passed"] == report.passed


def test_every_target_is_documented():
    for t in experiments.list_targets():
        assert t.doc.strip(), f"{t.name} has no docstring saying what was chosen and why"
        assert t.seconds_full > 0 and t.seconds_quick > 0
    assert "soudry2018-fig3.1" in TARGETS


def test_claim_constructors_decide_from_the_numbers():
    assert C.close("a", "s", 1.0, 1.04, atol=0.05).passed
    assert not C.close("a", "s", 1.0, 1.06, atol=0.05).passed
    assert not C.close("a", "s", 1.0, math.nan, atol=1.0).passed
    assert C.close("a", "s", 100.0, 104.0, rtol=0.05).passed
    assert C.at_most("a", "s", 1e-3, 5e-4).passed and not C.at_most("a", "s", 1e-3, 2e-3).passed
    assert C.at_least("a", "s", 2.0, 2.0).passed and not C.at_least("a", "s", 2.0, 1.9).passed
    assert C.equal("a", "s", "global", "global").passed
    assert not C.equal("a", "s", "global", "local").passed
    documented = C.at_most("a", "s", 1.0, 2.0, expected=False, note="why")
    assert not documented.passed and documented.as_expected
    assert documented.verdict == "FAIL (documented finding)"
    assert not C.at_most("a", "s", 1.0, 0.5, expected=False).as_expected


@pytest.fixture
def tiny_target():
    """A registered target of one short GD run on the Figure 3.1 data (removed afterwards)."""

    def compute(ctx):
        X, y = fb.datasets.soudry2018()
        run = ctx.train("gd", X, y, steps=ctx.horizon(5 * 10**7, 1000), lr=0.05)
        return Outcome(
            claims=[C.at_most("angle gap small", "test", 1.0, float(run.history["angle_gap"][-1]))],
            tables={"history": {"step": run.history["step"], "gap": run.history["angle_gap"]}},
            settings={"steps": run.steps_done, "coef": run.coef},
        )

    def plot(outcome, out):
        from fastbias.experiments._plotting import figure, save

        fig, (ax,) = figure(1, 1)
        ax.loglog(outcome.tables["history"]["step"], outcome.tables["history"]["gap"])
        return [save(fig, out / "tiny.png")]

    target("test-tiny", paper="Test", title="tiny", plot=plot, seconds_full=1, seconds_quick=1)(
        compute
    )
    yield "test-tiny"
    del TARGETS["test-tiny"]


def test_interrupted_target_resumes_bit_identically(tiny_target, tmp_path):
    """Ctrl-C during a target's run: TargetInterrupted after a checkpoint; running the same
    call again resumes and ends exactly where an uninterrupted run ends."""
    with ctrl_c_while_running(), pytest.raises(experiments.TargetInterrupted):
        experiments.reproduce(tiny_target, out=tmp_path)
    assert list((tmp_path / "checkpoints").glob("gd-*.ckpt"))
    report = experiments.reproduce(tiny_target, out=tmp_path)
    X, y = fb.datasets.soudry2018()
    direct = fb.train(X, y, steps=5 * 10**7, lr=0.05)
    np.testing.assert_array_equal(report.outcome.settings["coef"], direct.coef)
    assert report.outcome.settings["steps"] == 5 * 10**7


def test_reproduce_all_writes_index(tiny_target, tmp_path):
    reports, index = experiments.reproduce_all(
        quick=True, out=tmp_path, targets=[tiny_target], log=lambda msg: None
    )
    assert [r.target for r in reports] == [tiny_target]
    md, html = (p.read_text() for p in index)
    assert "test-tiny/tiny.png" in md and "angle gap small" in md and "PASS" in md
    assert "<img src='test-tiny/tiny.png'" in html
    assert (tmp_path / tiny_target / "verdict.json").exists()


def test_cli_reproduce_list_and_errors(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    for name in TARGETS:
        assert name in out
    assert main(["reproduce", "no-such-target"]) == 2
    assert "Unknown reproduce target 'no-such-target'" in capsys.readouterr().err
    assert main(["reproduce"]) == 2


def test_cli_reproduce_quick_prints_verdicts(tiny_target, tmp_path, capsys):
    assert main(["reproduce", tiny_target, "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "angle gap small" in out and "1/1 claims hold" in out
    assert (tmp_path / "tiny.png").read_bytes()[:8] == PNG
