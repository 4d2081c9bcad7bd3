"""Decoding by imputation recovers known distributions; classical populations are flagged."""

from __future__ import annotations

import json

import numpy as np
from dopa_rl.probes.decoding import (
    decode_distribution,
    decode_report,
    imputation_loss,
    reference_decodes,
    score_decode,
)
from dopa_rl.probes.tabular import cell_taus, expectiles
from scipy.optimize import check_grad

TAUS = cell_taus(40)


def test_gradient_is_analytic() -> None:
    v, p = np.array([0.0, 1.0, 5.0]), np.array([0.3, 0.4, 0.3])
    e = expectiles(v, p, TAUS)
    z = np.random.default_rng(0).uniform(0, 5, 100)
    err = check_grad(
        lambda x: float(imputation_loss(x, e, TAUS)[0]),
        lambda x: imputation_loss(x, e, TAUS)[1],
        z,
    )
    assert err < 1e-6
    # batched evaluation agrees with single evaluation
    batch = np.stack([z, z[::-1]])
    assert np.allclose(imputation_loss(batch, e, TAUS)[0][0], imputation_loss(z, e, TAUS)[0])


def test_bimodal_distribution_recovered() -> None:
    v = np.array([1.0, 2.0, 8.0, 9.0])
    p = np.array([0.3, 0.2, 0.2, 0.3])
    report = decode_report(expectiles(v, p, TAUS), TAUS, v, p, restarts=3, seed=0)
    assert report["identifiable"]
    assert report["loss"] < 1e-3
    refs = report["references"]
    assert report["wasserstein1"] < 0.35
    assert report["wasserstein1"] < 0.25 * refs["gaussian"]["wasserstein1"]
    assert report["ks"] < refs["gaussian"]["ks"]
    z = np.asarray(report["samples"])
    assert np.mean((z > 3) & (z < 7)) < 0.15  # little mass between the modes
    json.dumps(report)  # JSON-able for probe.json


def test_two_point_distribution_recovered() -> None:
    v, p = np.array([0.0, 10.0]), np.array([0.7, 0.3])
    dec = decode_distribution(expectiles(v, p, TAUS), TAUS, (0.0, 10.0), restarts=2, seed=1)
    z = dec["samples"]
    assert z.size == 200
    assert abs(np.mean(z < 5) - 0.7) < 0.05
    assert score_decode(z, v, p)["wasserstein1"] < 0.5


def test_classical_population_not_identifiable() -> None:
    rng = np.random.default_rng(0)
    e = 5.2 + 1e-3 * rng.standard_normal(40)
    dec = decode_distribution(e, np.full(40, 0.5), (0.1, 20.0), seed=0)
    assert dec["identifiable"] is False and "mean" in dec["reason"]
    assert np.ptp(dec["samples"]) < 0.05 and abs(dec["samples"].mean() - 5.2) < 0.05


def test_scores_and_references() -> None:
    v, p = np.array([1.0, 3.0]), np.array([0.5, 0.5])
    assert score_decode(np.array([1.0, 3.0]), v, p) == {"wasserstein1": 0.0, "ks": 0.0}
    s = score_decode(np.full(10, 2.0), v, p)
    assert s["wasserstein1"] == 1.0 and s["ks"] == 0.5
    refs = reference_decodes(v, p, 50, seed=0)
    assert set(refs) == {"point_mass_mean", "gaussian", "uniform"}
    assert np.all(refs["point_mass_mean"] == 2.0) and refs["uniform"].min() >= 1.0
