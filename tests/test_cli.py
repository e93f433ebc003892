"""The command line: `fastbias demo` and `fastbias run` write what they say, errors are clear."""

import json

import numpy as np
import pytest

import fastbias as fb
from fastbias.cli import main


def test_demo_writes_figure_and_history(tmp_path, capsys):
    assert main(["demo", "--steps", "1e4", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "exact L2 max-margin (SVM): w_hat = [0.5 0.5]" in out
    assert "angle gap" in out and "fitted rates" in out
    png = tmp_path / "figure31.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = np.genfromtxt(tmp_path / "figure31_history.csv", delimiter=",", names=True)
    assert data["step"][-1] == 10_000
    assert np.all(np.diff(data["angle_gap"][data["step"] >= 1000]) < 0)


def test_run_on_npz_and_csv(tmp_path, capsys):
    X, y = fb.datasets.separable_gaussian(30, 3, margin=0.2, seed=1)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    out = tmp_path / "out"
    assert (
        main(
            [
                "run",
                str(tmp_path / "data.npz"),
                "--steps",
                "2000",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps_done"] == 2000 and summary["status"] == "completed"
    direct = fb.train(X, y, steps=2000)
    np.testing.assert_allclose(summary["coef"], direct.coef, rtol=1e-12)
    csv = tmp_path / "data.csv"
    np.savetxt(csv, np.column_stack([X, (y > 0).astype(int)]), delimiter=",", header="a,b,c,label")
    assert (
        main(
            [
                "run",
                str(csv),
                "--loss",
                "logistic",
                "--steps",
                "100",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert (out / "history.csv").exists()
    capsys.readouterr()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "missing.npz"], "does not exist"),
        (["run", "data.txt"], "unsupported data file"),
        (["run", "bad.npz"], "no array named 'X'"),
        (["run"], "or --resume CHECKPOINT is required"),
        (["run", "data.txt", "--resume", "x.ckpt"], "not both"),
        (["run", "--resume", "x.ckpt"], "does not exist"),
        (["run", "data.npz", "--model", "resnet"], "Unknown model"),
    ],
)
def test_run_errors(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.txt").write_text("1,2\n")
    np.savez(tmp_path / "bad.npz", A=np.ones(3))
    np.savez(tmp_path / "data.npz", X=np.eye(2), y=np.array([1, -1]))
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_steps_argument(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--steps", "2.5"])
    assert "steps must be a whole number" in capsys.readouterr().err


def test_model_help_lists_every_registered_name(capsys):
    from fastbias.models.registry import MODELS

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    for entry in MODELS:
        if entry.syntax:
            assert entry.syntax in text
    assert "lowrank" in text


def test_run_checkpoint_and_resume(tmp_path, capsys):
    X, y = fb.datasets.separable_gaussian(20, 4, margin=0.2, seed=2)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    ckpt, out = tmp_path / "run.ckpt", tmp_path / "out"
    common = ["--out", str(out), "--no-progress"]
    argv = ["run", str(tmp_path / "data.npz"), "--model", "diag:2", "--steps", "300"]
    assert main(argv + ["--checkpoint", str(ckpt)] + common) == 0
    assert ckpt.exists()
    assert main(["run", "--resume", str(ckpt), "--steps", "700"] + common) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps_done"] == 1000 and summary["model"] == "Diagonal(depth=2)"
    direct = fb.train(X, y, model="diag:2", steps=1000)
    np.testing.assert_array_equal(summary["coef"], direct.coef)
    capsys.readouterr()


def test_demo_notice_tells_an_empty_kernel_cache(tmp_path):
    """With numba's cache empty, the demo says it will compile first (a silent minute would
    look like a hang); with it filled (this process has run the kernels), it does not."""
    import os
    import subprocess
    import sys

    code = "from fastbias.cli import _kernels_cached; print(_kernels_cached())"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "empty")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
    X, y = fb.datasets.soudry2018()
    fb.train(X, y, steps=3, optimizer="momentum")  # compiles or loads the demo's kernels
    from fastbias.cli import _demo_kernels, _kernels_cached

    assert all(kernel.signatures for kernel in _demo_kernels())  # the ones the demo runs
    assert _kernels_cached()
