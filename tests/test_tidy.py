"""Tidy views: History/Run.to_pandas, to_xarray, the CSV written through pandas or without it."""

import subprocess
import sys

import numpy as np
import pytest

import fastbias as fb

pd = pytest.importorskip("pandas")
xr = pytest.importorskip("xarray")


@pytest.fixture(scope="module")
def linear_run():
    X, y = fb.datasets.soudry2018()
    return fb.train(X, y, steps=2000)


@pytest.fixture(scope="module")
def network_run():
    X, y = fb.datasets.soudry2018()
    net = fb.models.Network.fully_connected(2, [3], activation="relu")
    return fb.train(X, y, model=net, steps=300, lr=0.01)


def test_history_frame_is_the_history(linear_run):
    h = linear_run.history
    df = h.to_pandas()
    assert list(df.columns) == list(h.columns)
    assert len(df) == len(h)
    assert df["step"].dtype == np.int64
    for name in h.columns:
        np.testing.assert_array_equal(df[name].to_numpy(), h[name])
    wide = h.to_pandas(iterates=True)
    assert list(wide.columns[-2:]) == ["w_0", "w_1"]
    np.testing.assert_array_equal(wide[["w_0", "w_1"]].to_numpy(), h.iterates)


def test_run_frame_leads_with_settings(linear_run):
    df = linear_run.to_pandas()
    n = len(linear_run.history)
    assert list(df.columns[-len(linear_run.history.columns) :]) == list(linear_run.history.columns)
    assert (df["loss_function"] == "exp").all()  # the setting; "loss" is the loss value
    np.testing.assert_array_equal(df["loss"].to_numpy(), linear_run.history["loss"])
    assert (df["lr"] == linear_run.settings["lr"]).all() and (df["status"] == "completed").all()
    assert (df["model"] == "Linear()").all() and len(df) == n
    bare = linear_run.to_pandas(settings=False)
    assert list(bare.columns) == list(linear_run.history.columns)


def test_csv_is_the_same_with_and_without_pandas(linear_run, tmp_path, monkeypatch):
    with_pd = linear_run.history.to_csv(tmp_path / "a.csv").read_bytes()
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas -> ImportError
    without = linear_run.history.to_csv(tmp_path / "b.csv").read_bytes()
    monkeypatch.undo()
    assert with_pd == without
    back = pd.read_csv(tmp_path / "a.csv")
    np.testing.assert_array_equal(back["angle_gap"].to_numpy(), linear_run.history["angle_gap"])
    np.testing.assert_array_equal(back["w_1"].to_numpy(), linear_run.history.iterates[:, 1])


def test_csv_spells_out_nan_and_inf(tmp_path, monkeypatch):
    h = fb.History(
        {"step": np.array([1, 2]), "gap": np.array([np.nan, np.inf])},
        np.array([[0.1, -np.inf], [1e-300, 2.5]]),
        {},
    )
    a = h.to_csv(tmp_path / "a.csv").read_bytes().decode()
    monkeypatch.setitem(sys.modules, "pandas", None)
    b = h.to_csv(tmp_path / "b.csv").read_bytes().decode()
    assert a == b == "step,gap,w_0,w_1\r\n1,nan,0.1,-inf\r\n2,inf,1e-300,2.5\r\n"


def test_missing_library_names_the_extra(linear_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r'pip install "fastbias\[pandas\]"'):
        linear_run.to_pandas()
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(ImportError, match=r'pip install "fastbias\[xarray\]"'):
        linear_run.history.to_xarray()


def test_xarray_of_a_linear_run(linear_run):
    ds = linear_run.to_xarray()
    h = linear_run.history
    np.testing.assert_array_equal(ds["step"].to_numpy(), h["step"])
    np.testing.assert_array_equal(ds["angle_gap"].to_numpy(), h["angle_gap"])
    assert ds["iterates"].dims == ("step", "component")
    np.testing.assert_array_equal(ds["iterates"].to_numpy(), h.iterates)
    assert ds.attrs["loss"] == "exp" and ds.attrs["status"] == "completed"
    assert ds.sel(step=1000)["norm"].item() == h["norm"][list(h["step"]).index(1000)]


def test_xarray_holds_the_per_neuron_arrays(network_run):
    h = network_run.history
    ds = network_run.to_xarray()
    assert ds["neuron_norms_1"].dims == ("step", "neuron_1")
    assert ds["active_1"].dims == ("step", "sample", "neuron_1")
    assert ds.sizes["neuron_1"] == 3 and ds.sizes["sample"] == 16
    np.testing.assert_array_equal(ds["neuron_norms_1"].to_numpy(), h.arrays["neuron_norms_1"])
    np.testing.assert_array_equal(ds["active_1"].to_numpy(), h.arrays["active_1"])
    # the active fraction column is the mean of the pattern over samples and neurons
    np.testing.assert_allclose(
        ds["active_1"].mean(("sample", "neuron_1")).to_numpy(), h["active_fraction_1"]
    )


def test_flow_history_frame_has_float_times():
    X, y = fb.datasets.soudry2018()
    run = fb.flow(X, y, t_max=1e6)
    df = run.history.to_pandas()
    assert df["step"].dtype == np.float64
    np.testing.assert_array_equal(df["log_time"].to_numpy(), run.history["log_time"])


def test_import_fastbias_stays_lean():
    code = (
        "import sys, fastbias; "
        "bad = [m for m in ('pandas', 'xarray', 'sklearn', 'dask', 'distributed', 'tqdm') "
        "if m in sys.modules]; print(bad); assert not bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
