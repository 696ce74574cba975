"""Every seed workflow's example runs (smoke size) and reaches its headline numbers."""
from __future__ import annotations

import runpy

import numpy as np
from conftest import EXAMPLES
from conftest import run_example as run


def test_seed000_gmm_pair(tmp_path):
    r = run("seed000_gmm_pair", out=str(tmp_path))
    assert all(0.6 <= a <= 0.8 for a in r["cluster_auc_design"])
    assert all(0.55 <= a <= 0.85 for a in r["cluster_auc"])         # 4000 draws: MC error
    assert abs(r["classifier_auc"] - r["bayes_auc"]) < 0.02         # learnt ~ Bayes-optimal
    assert (tmp_path / "seed000_pair.png").stat().st_size > 1000


def test_seed000_figure_has_legend_axis_labels_and_the_aucs():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mod = runpy.run_path(str(EXAMPLES / "seed000_gmm_pair.py"))
    pair = mod["ng"].datasets.gmm_pair(3, 2, auc_range=(0.6, 0.8), rng=0)
    X, y, _ = pair.draw(500, rng=1)
    result = {"cluster_auc": [0.7, 0.65, 0.75], "bayes_auc": 0.71, "classifier_auc": 0.7}
    fig = mod["pair_figure"](pair, X, y, result)
    try:
        ax = fig.axes[0]
        assert ax.get_xlabel() and ax.get_ylabel()
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels[:2] == ["positive draws", "negative draws"] and len(labels) == 4
        assert "Bayes AUC 0.710" in ax.get_title()
    finally:
        plt.close(fig)


def test_seed001_sampling_bic_digits():
    r = run("seed001_sampling_bic_digits")
    assert r["new_samples"] == (2000, 2)
    assert 4 <= r["bic_best_K"] <= 16
    assert r["digits_accuracy"] > r["seed_kde"] > r["gaussian_nb"]


def test_seed002_clustering():
    r = run("seed002_clustering")
    assert r["K_silhouette"] == 2 and r["K_bic"] == 2
    assert r["roc_auc"] > 0.98 and r["roc_auc_15pct_missing"] > 0.97


def test_seed003_pygmmis_readme():
    r = run("seed003_pygmmis_readme")
    assert r["mean_logL_truth_draws"] - r["truth_own"] > -0.1
    assert abs(r["orig_size"] / r["true_orig_size"] - 1) < 0.1
    assert np.isfinite(r["bg_amp"]) and abs(r["bg_amp"] - r["true_bg_amp"]) < 0.05
    assert r["largest_mean_error"] < 0.6


def test_dask_cluster_from_zarr():
    r = run("dask_cluster")
    assert r["equal_to_local"] is True                      # bit for bit the one-process fit
    assert r["largest_mean_error"] < 0.15
    np.testing.assert_allclose(r["amp"], [0.4, 0.3, 0.2, 0.1], atol=0.02)


def test_online_memmap():
    r = run("online_memmap")
    assert r["passes"] <= 3 < r["full_passes"] // 4          # a few passes instead of tens
    assert 0 < r["full_logL"] - r["online_logL"] < 1e-3       # close to the optimum, below it
    assert r["largest_mean_error"] < 0.2
    assert r["slice_logL"][-1] > r["slice_logL"][0]
    assert r["online_each_pass"] == sorted(r["online_each_pass"])     # each pass gains


def test_censored_nondetections(tmp_path):
    """Issue 35's gallery example: the censored fit is close to the truth, the naive ones not."""
    r = run("censored_nondetections", out=str(tmp_path))
    assert 0.25 < r["nondetected"] < 0.4
    cens, drop, plug = (r[k] for k in ("censored fit", "dropping non-detections",
                                       "limits as measurements"))
    assert r["logL_truth"] - cens["logL"] < 0.02        # held out: as good as the truth
    for naive in (drop, plug):
        assert r["logL_truth"] - naive["logL"] > 1.0
        assert naive["mean_error"][1] > 10 * cens["mean_error"][1]     # the faint population
    assert cens["mean_error"][1] < 0.1 and cens["amp_error"][1] < 0.05
