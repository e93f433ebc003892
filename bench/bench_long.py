"""Long-horizon jobs (issue 5): 10^9 steps in one call of train, the cost of checkpoints, and
compensated vs float64 per step. Run: ``pytest bench/bench_long.py --benchmark-only``."""

import fastbias as fb

SOUDRY = fb.datasets.soudry2018()


def test_billion_float64_steps(benchmark):
    """Soudry Figure 3.1 data, 10^9 GD steps through fb.train (target: <= 60 s)."""
    X, y = SOUDRY
    fb.train(X, y, steps=10)
    benchmark.group = "10^9 steps, fb.train, Figure 3.1 data"
    run = benchmark.pedantic(lambda: fb.train(X, y, steps=10**9, lr=0.078), rounds=1, iterations=1)
    assert run.steps_done == 10**9
    benchmark.extra_info["angle_gap"] = float(run.history["angle_gap"][-1])


def test_checkpoint_overhead(benchmark, tmp_path):
    """The same 2e8-step run with a checkpoint every 0.5 s (20x more often than the 10 s
    default) against none: the ratio bounds the cost of checkpointing every 10 s."""
    X, y = SOUDRY
    benchmark.group = "checkpoint overhead, 2e8 steps"
    fb.train(X, y, steps=10)

    def both():
        plain = fb.train(X, y, steps=2 * 10**8, lr=0.078).elapsed
        saved = fb.train(
            X, y, steps=2 * 10**8, lr=0.078, checkpoint=tmp_path / "c.ckpt", checkpoint_every=0.5
        ).elapsed
        return plain, saved

    plain, saved = benchmark.pedantic(both, rounds=1, iterations=1)
    benchmark.extra_info["plain_s"] = plain
    benchmark.extra_info["checkpointed_s"] = saved
    benchmark.extra_info["overhead_every_0.5s"] = saved / plain - 1


def test_compensated_per_step(benchmark):
    X, y = SOUDRY
    benchmark.group = "precision per step, Figure 3.1 data, 10^6 steps"
    fb.train(X, y, steps=10, precision="compensated")
    benchmark.extra_info["steps"] = 10**6
    benchmark(lambda: fb.train(X, y, steps=10**6, precision="compensated", record=1))


def test_float64_per_step(benchmark):
    X, y = SOUDRY
    benchmark.group = "precision per step, Figure 3.1 data, 10^6 steps"
    benchmark.extra_info["steps"] = 10**6
    benchmark(lambda: fb.train(X, y, steps=10**6, record=1))
