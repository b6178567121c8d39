"""The fused censored-Beta likelihood Op against SciPy (bayescale.kinds.beta_kernel)."""

import numpy as np
import pytest

from bayescale.kinds import beta_kernel, skills


def test_log_gamma_and_digamma_match_scipy_from_tiny_to_huge_arguments():
    from scipy import special

    x = np.geomspace(1e-8, 1e7, 4001)
    # integers and the recurrence's switch point, where a shift could be off by one
    x = np.concatenate([x, np.arange(1.0, 30.0), [9.999999, 10.0, 10.000001]])
    got = np.array([beta_kernel.lgamma_digamma(v) for v in x])
    lgamma = special.gammaln(x)
    assert np.max(np.abs(got[:, 0] - lgamma) / np.maximum(1.0, np.abs(lgamma))) < 1e-12
    psi = special.psi(x)
    assert np.max(np.abs(got[:, 1] - psi) / np.maximum(1.0, np.abs(psi))) < 1e-12
    assert beta_kernel.lgamma_digamma(0.0) == (np.inf, -np.inf)
    assert np.isnan(beta_kernel.lgamma_digamma(-1.5)[0])


def test_non_finite_shapes_give_a_non_finite_log_likelihood():
    clip = 0.005
    value = np.array([clip, 1 - clip, 0.3])
    for bad in (np.nan, np.inf):
        logp, grad_a, _ = beta_kernel.beta_cell_logp(value, np.full(3, bad), np.full(3, 2.0),
                                                     clip)
        assert not np.isfinite(logp).any()


def _cells(clip, rng):
    """Cells over the parameter range: tiny to saturated means, precisions up to 20000."""
    a, b = (g.ravel() for g in np.meshgrid(np.geomspace(0.02, 500, 21),
                                           np.geomspace(0.5, 20000, 21)))
    value = np.clip(rng.beta(a, b), clip, 1 - clip)
    # every (a, b) also censored below and above
    value = np.concatenate([value, np.full(a.size, clip), np.full(a.size, 1 - clip)])
    return value, np.tile(a, 3), np.tile(b, 3)


def _scipy_censored(value, a, b, clip):
    """SciPy's censored log likelihood (``skills.censored_beta_logp``) in ``a`` and ``b``."""
    return skills.censored_beta_logp(value, a / (a + b), a + b, clip)


@pytest.mark.parametrize("clip", [0.005, 0.02])
def test_cell_log_likelihood_and_its_gradient_match_scipy(clip):
    from scipy import special

    value, a, b = _cells(clip, np.random.default_rng(3))
    logp, grad_a, grad_b = beta_kernel.beta_cell_logp(value, a, b, clip)
    # the Op leaves out log Gamma(a + b)
    reference = _scipy_censored(value, a, b, clip)
    logp_full = logp + special.gammaln(a + b)
    # scipy's censored terms are logs of doubles: denormal below exp(-708), -inf below
    # exp(-745); there the series stays finite
    comparable = reference > -700
    assert comparable.mean() > 0.75
    assert np.all(np.isfinite(logp))
    assert np.all(logp_full[~np.isfinite(reference)] < -700)
    assert np.max(np.abs(logp_full - reference)[comparable]
                  / np.maximum(1.0, np.abs(reference[comparable]))) < 1e-9
    # central differences (relative steps) of scipy's version
    h = 1e-6
    with np.errstate(invalid="ignore"):  # -inf - -inf where scipy underflows
        fd_a = (_scipy_censored(value, a * (1 + h), b, clip)
                - _scipy_censored(value, a * (1 - h), b, clip)) / (2 * h * a)
        fd_b = (_scipy_censored(value, a, b * (1 + h), clip)
                - _scipy_censored(value, a, b * (1 - h), clip)) / (2 * h * b)
    grad_a = grad_a + special.psi(a + b)
    grad_b = grad_b + special.psi(a + b)
    ok = comparable & np.isfinite(fd_a) & np.isfinite(fd_b)
    assert np.max(np.abs(grad_a - fd_a)[ok] / (1 + np.abs(fd_a[ok]))) < 1e-5
    assert np.max(np.abs(grad_b - fd_b)[ok] / (1 + np.abs(fd_b[ok]))) < 1e-5


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_RUN"])
def test_op_gradient_is_the_kernels_derivatives_in_every_backend(mode):
    import pytensor
    import pytensor.tensor as pt

    clip = 0.005
    value, a, b = _cells(clip, np.random.default_rng(4))
    weights = np.random.default_rng(5).normal(size=value.size)
    v, av, bv = pt.dvector(), pt.dvector(), pt.dvector()
    cost = pt.sum(weights * beta_kernel.beta_cell_logp_pt(v, av, bv, clip))
    fn = pytensor.function([v, av, bv], [cost, *pytensor.grad(cost, [av, bv])], mode=mode)
    total, grad_a, grad_b = fn(value, a, b)
    logp, da, db = beta_kernel.beta_cell_logp(value, a, b, clip)
    assert np.isclose(total, np.sum(weights * logp), rtol=1e-12)
    assert np.allclose(grad_a, weights * da, rtol=1e-12)
    assert np.allclose(grad_b, weights * db, rtol=1e-12)


def test_op_refuses_second_derivatives_and_non_vectors():
    import pytensor
    import pytensor.tensor as pt

    v, av, bv = pt.dvector(), pt.dvector(), pt.dvector()
    _, grad_a, _ = beta_kernel.BetaCellLogp(0.005)(v, av, bv)
    with pytest.raises(NotImplementedError, match="second derivatives"):
        pytensor.grad(pt.sum(grad_a), av)
    with pytest.raises(TypeError, match="vectors"):
        beta_kernel.BetaCellLogp(0.005)(pt.dmatrix(), av, bv)


def test_skills_spec_refuses_numpyro_with_the_beta_likelihood():
    from bayescale.errors import SpecError
    from bayescale.spec import load_spec

    spec = load_spec("skills")
    with pytest.raises(SpecError, match="no JAX version"):
        spec.with_overrides(sampler={"backend": "numpyro"})
    # the binomial likelihood is PyMC's own distribution and keeps every sampler
    spec.with_overrides(likelihood={"distribution": "binomial"},
                        sampler={"backend": "numpyro"})
