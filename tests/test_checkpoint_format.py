"""The checkpoint file format (issues 11.2 and 15): nothing in a file is executed, every damaged
or foreign file gives one clear error type, and a run killed at any moment leaves a checkpoint
that resumes bit for bit."""

import io
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fastbias as fb
from fastbias.exceptions import CheckpointError
from fastbias.optim.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore:the initialization does not satisfy")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small extended-precision checkpoint (long double arrays and a MaxMarginSolution)."""
    path = tmp_path_factory.mktemp("ck") / "run.ckpt"
    X, y = fb.datasets.soudry2018()
    fb.train(X, y, steps=700, precision="extended", checkpoint=path)
    return path


class _Payload:
    """Unpickling this calls open(marker, "w"): it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_renamed_to_a_checkpoint_is_refused_unexecuted(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"format": "fastbias-checkpoint-1", "state": _Payload(marker)})
    # the payload is live: unpickling it elsewhere creates its marker
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(probe))).close()
    assert probe.exists()
    path = tmp_path / "colleague.ckpt"
    path.write_bytes(payload)
    with pytest.raises(CheckpointError, match="pickle") as info:
        fb.resume(path)
    assert str(path) in str(info.value)
    assert not marker.exists()
    # an object array inside an otherwise well-formed archive with a valid checksum: refused
    # by the dtype whitelist before its pickle is touched
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    meta = {"format": "fastbias-checkpoint", "version": 3, "arrays": {"a0": {}}}
    crafted = tmp_path / "crafted.ckpt"
    crafted.write_bytes(_archive({"meta.npy": _npy_json(meta), "a0.npy": buf.getvalue()}))
    with pytest.raises(CheckpointError, match="dtype object"):
        load_checkpoint(crafted)
    assert not marker.exists()


def _npy_json(meta):
    buf = io.BytesIO()
    raw = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.lib.format.write_array(buf, raw, allow_pickle=False)
    return buf.getvalue()


def _archive(members):
    """A ZIP with the format's trailing checksum, built by hand."""
    import hashlib

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.comment = b"0" * 64
    body = buf.getvalue()[:-64]
    return body + hashlib.sha256(body).hexdigest().encode()


def test_the_file_is_an_npz_without_pickles(saved):
    with np.load(saved, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes())
        assert meta["format"] == "fastbias-checkpoint" and meta["version"] == 3
        assert all(z[k].dtype != object for k in z.files)


def test_long_double_state_round_trips_exactly(saved, tmp_path):
    spec, state = load_checkpoint(saved)
    assert state.theta.dtype == np.longdouble and spec.precision == "extended"
    again = tmp_path / "again.ckpt"
    save_checkpoint(again, spec, state)
    spec2, state2 = load_checkpoint(again)
    for a, b in ((state.theta, state2.theta), (state.rec, state2.rec)):
        assert a.dtype == b.dtype == np.longdouble
        np.testing.assert_array_equal(a, b)
    for name in ("X", "y", "theta0", "schedule", "reference_vec", "w_tilde"):
        np.testing.assert_array_equal(getattr(spec, name), getattr(spec2, name))
    assert spec2.settings == spec.settings
    np.testing.assert_array_equal(spec2.reference.dual, spec.reference.dual)


def test_every_truncation_is_one_clear_error(saved, tmp_path):
    data = saved.read_bytes()
    cut = tmp_path / "cut.ckpt"
    for n in [*range(0, len(data), max(1, len(data) // 97)), len(data) - 1]:
        cut.write_bytes(data[:n])
        with pytest.raises(CheckpointError, match="not a fastbias checkpoint"):
            load_checkpoint(cut)


def test_every_bit_flip_is_one_clear_error(saved, tmp_path):
    """300 single-bit flips at random positions (header, metadata, arrays, checksum): each is
    a CheckpointError, never a UnicodeDecodeError, AttributeError, TypeError or MemoryError,
    and never a silently different run."""
    data = bytearray(saved.read_bytes())
    rng = np.random.default_rng(15)
    flipped = tmp_path / "flip.ckpt"
    for pos, bit in zip(rng.integers(0, len(data), 300), rng.integers(0, 8, 300), strict=True):
        bad = bytearray(data)
        bad[pos] ^= 1 << bit
        flipped.write_bytes(bytes(bad))
        with pytest.raises(CheckpointError) as info:
            fb.resume(flipped, steps=1)
        assert str(flipped) in str(info.value)


def test_paths_that_are_not_checkpoint_files(tmp_path):
    X, y = fb.datasets.soudry2018()
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="is a directory"):
        fb.resume(tmp_path)
    with pytest.raises(ValueError, match="is a directory"):
        fb.train(X, y, steps=10, checkpoint=tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fb.resume(tmp_path / "missing.ckpt")
    other = tmp_path / "data.npz"
    np.savez(other, X=X)
    with pytest.raises(CheckpointError, match="checksum"):
        fb.resume(other)


def test_a_consistent_checksum_does_not_make_a_crafted_state_usable(saved, tmp_path):
    """A file written with a valid checksum but a state that does not fit its spec (which
    could make a kernel index out of bounds) is refused by the consistency check."""
    spec, state = load_checkpoint(saved)
    state.rec = state.rec[:-1]
    bad = tmp_path / "bad.ckpt"
    save_checkpoint(bad, spec, state)
    with pytest.raises(CheckpointError, match="state rec"):
        load_checkpoint(bad)
    spec, state = load_checkpoint(saved)
    state.done = spec.steps + 5
    save_checkpoint(bad, spec, state)
    with pytest.raises(CheckpointError, match="step counter"):
        load_checkpoint(bad)


_KILLED_RUN = """
import sys
import numpy as np
import fastbias as fb
X, y = fb.datasets.soudry2018()
model = sys.argv[2]
kw = dict(lr=0.05) if model == "linear" else dict(model=model, lr=0.01, precision="compensated")
fb.train(X, y, steps=10**9, checkpoint=sys.argv[1], checkpoint_every=1e-9,
         chunk_seconds=0.003, **kw)
"""


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_a_resumable_checkpoint(tmp_path):
    """A checkpointed run killed with SIGKILL at random moments (while it saves after every
    chunk) always leaves a loadable checkpoint, and resuming it is bit-identical to an
    uninterrupted run of the same length."""
    script = tmp_path / "run.py"
    script.write_text(_KILLED_RUN)
    env = dict(os.environ, PYTHONPATH=str(Path(fb.__file__).parents[1]))
    X, y = fb.datasets.soudry2018()
    rng = np.random.default_rng(11)
    for i, model in enumerate(["linear", "diag:2", "linear", "diag:2", "linear"]):
        path = tmp_path / f"killed{i}.ckpt"
        proc = subprocess.Popen([sys.executable, str(script), str(path), model], env=env)
        try:
            # a hang guard: the run may compile its kernel first (a fresh install, a busy machine)
            deadline = time.monotonic() + 300
            while not path.exists():
                assert proc.poll() is None, "the run ended before its first checkpoint"
                assert time.monotonic() < deadline, "no checkpoint after 300 s"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.4))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        spec, state = load_checkpoint(path)
        assert 0 < state.done < 10**9
        resumed = fb.resume(path, steps=300)
        kw = dict(lr=0.05) if model == "linear" else dict(model=model, lr=0.01)
        if model != "linear":
            kw["precision"] = "compensated"
        straight = fb.train(X, y, steps=state.done + 300, **kw)
        for a, b in zip(resumed.params, straight.params, strict=True):
            np.testing.assert_array_equal(a, b)
