"""The censored Beta log likelihood of the skills kind as one fused PyTensor Op.

The skills model's likelihood is ``Beta(a, b)`` per cell, censored at ``clip``: a score
stored as 0.00 (``value <= clip``) contributes ``log P(Y <= clip)`` and one stored as
1.00 contributes ``log P(Y >= 1 - clip)``. Written with PyTensor's element-wise
operations, its log-gamma and digamma calls (SciPy's and libm's, one function call per
element) and the censored cells' series were most of the full fit's log-density and
gradient time. :class:`BetaCellLogp` computes every cell's log density **and** its two
partial derivatives in one compiled loop, sharing one logarithm between ``log Gamma(x)``
and its derivative ``psi(x)``; the gradient PyTensor builds then only reads them.

The Op leaves out ``log Gamma(a + b)``: in the skills model ``a + b`` is a benchmark's
precision, shared by that benchmark's cells, so the caller adds it once per benchmark.

Accuracy (``tests/test_beta_kernel.py``): log-gamma and digamma agree with SciPy to
1e-12 (relative, or absolute where below 1) for arguments from 1e-8 to 1e7; the censored
cells' log CDF is a series summed until its tail is below 1e-17 of the sum (at most 10^6
terms), and it stays finite far in the tail, where SciPy's log CDF underflows to -inf.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from pytensor.gradient import DisconnectedType, grad_undefined
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key
from pytensor.tensor import as_tensor_variable
from pytensor.tensor.type import TensorType

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
#: Below this argument the log-gamma and digamma use the recurrence (x -> x + 1) first
_SHIFT_TO = 10.0
#: Relative size of the neglected tail at which the censored-cell series stops
_SERIES_TOL = 1e-17
_SERIES_MAX_TERMS = 1_000_000


@numba.njit(cache=True, nogil=True)
def lgamma_digamma(x: float) -> tuple[float, float]:
    """``log Gamma(x)`` and ``psi(x)`` for ``x > 0``, sharing one logarithm.

    The recurrence ``Gamma(x + 1) = x Gamma(x)`` moves ``x`` to at least 10, where
    Stirling's series (to ``x^-9``) and the digamma's asymptotic series (to ``x^-10``)
    are exact to rounding. Returns ``(inf, -inf)`` at 0 and NaN for negative or NaN
    ``x``.
    """
    if not x > 0.0:
        if x == 0.0:
            return math.inf, -math.inf
        return math.nan, math.nan
    # product P = x (x + 1) ... and its derivative P' (psi's shift is P' / P): no
    # division inside the loop
    product = 1.0
    product_slope = 0.0
    while x < _SHIFT_TO:
        product_slope = product_slope * x + product
        product *= x
        x += 1.0
    r = 1.0 / x
    r2 = r * r
    log_x = math.log(x)
    log_gamma = ((x - 0.5) * log_x - x + _HALF_LOG_2PI
                 + r * (1.0 / 12.0 - r2 * (1.0 / 360.0 - r2 * (1.0 / 1260.0
                        - r2 * (1.0 / 1680.0 - r2 * (1.0 / 1188.0))))))
    digamma = (log_x - 0.5 * r
               - r2 * (1.0 / 12.0 - r2 * (1.0 / 120.0 - r2 * (1.0 / 252.0
                       - r2 * (1.0 / 240.0 - r2 * (1.0 / 132.0))))))
    if product != 1.0:
        log_gamma -= math.log(product)
        digamma -= product_slope / product
    return log_gamma, digamma


@numba.njit(cache=True, nogil=True)
def _lower_tail_series(x: float, a: float, b: float) -> tuple[float, float, float]:
    """``log S`` and its derivatives in ``a`` and ``b``, ``S = sum_n t_n``.

    ``t_0 = 1``, ``t_(n+1) = t_n (a + b + n) x / (a + 1 + n)``: the hypergeometric
    series of ``I_x(a, b) = x^a (1 - x)^b S / (a B(a, b))``. All terms are positive; the
    loop stops once the ratio of successive terms is below 1 and the remaining tail,
    bounded by a geometric series, is below ``_SERIES_TOL`` of the sum.
    """
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.nan, math.nan, math.nan
    term = 1.0
    total = 1.0
    dlog_term_a = 0.0
    dlog_term_b = 0.0
    total_a = 0.0
    total_b = 0.0
    for n in range(_SERIES_MAX_TERMS):
        ab_n = a + b + n
        a1_n = a + 1.0 + n
        ratio = ab_n * x / a1_n
        term *= ratio
        dlog_term_a += 1.0 / ab_n - 1.0 / a1_n
        dlog_term_b += 1.0 / ab_n
        total += term
        total_a += term * dlog_term_a
        total_b += term * dlog_term_b
        # once past the peak, the later ratios stay below max(ratio, x) < 1
        bound = max(ratio, x)
        if bound < 1.0 and term * bound / (1.0 - bound) < _SERIES_TOL * total:
            break
    return math.log(total), total_a / total, total_b / total


@numba.njit(cache=True, nogil=True)
def beta_cell_logp(value, a, b, clip):
    """Per-cell censored Beta log likelihood without ``log Gamma(a + b)``, and its gradient.

    Parameters
    ----------
    value : ndarray
        Scores, already inside ``[clip, 1 - clip]``; a score ``<= clip`` is censored
        below and one ``>= 1 - clip`` above.
    a, b : ndarray
        Beta shape parameters, same length as ``value``.
    clip : float
        The censoring point (half a rounding unit of the stored scores).

    Returns
    -------
    logp, dlogp_da, dlogp_db : ndarray
        ``log f(value; a, b) - log Gamma(a + b)`` (or the censored log probability less
        the same term) and its partial derivatives in ``a`` and ``b`` (without those of
        ``log Gamma(a + b)``).
    """
    n = value.shape[0]
    logp = np.empty(n)
    grad_a = np.empty(n)
    grad_b = np.empty(n)
    log_clip = math.log(clip)
    log1m_clip = math.log1p(-clip)
    for i in range(n):
        v, ai, bi = value[i], a[i], b[i]
        lg_a, psi_a = lgamma_digamma(ai)
        lg_b, psi_b = lgamma_digamma(bi)
        if v <= clip:
            log_s, s_a, s_b = _lower_tail_series(clip, ai, bi)
            logp[i] = ai * log_clip + bi * log1m_clip - math.log(ai) - lg_a - lg_b + log_s
            grad_a[i] = log_clip - 1.0 / ai - psi_a + s_a
            grad_b[i] = log1m_clip - psi_b + s_b
        elif v >= 1.0 - clip:
            # P(Y >= 1 - c) for Y ~ Beta(a, b) is P(Y' <= c) for Y' ~ Beta(b, a)
            log_s, s_b, s_a = _lower_tail_series(clip, bi, ai)
            logp[i] = bi * log_clip + ai * log1m_clip - math.log(bi) - lg_a - lg_b + log_s
            grad_a[i] = log1m_clip - psi_a + s_a
            grad_b[i] = log_clip - 1.0 / bi - psi_b + s_b
        else:
            log_v = math.log(v)
            log1m_v = math.log1p(-v)
            logp[i] = (ai - 1.0) * log_v + (bi - 1.0) * log1m_v - lg_a - lg_b
            grad_a[i] = log_v - psi_a
            grad_b[i] = log1m_v - psi_b
    return logp, grad_a, grad_b


class BetaCellLogp(Op):
    """Op ``(value, a, b) -> (logp, dlogp/da, dlogp/db)`` over cells (see the module).

    Only the first output is meant to be used in a model; its gradient in ``a`` and
    ``b`` is read from the other two. The gradient in ``value`` is undefined (the scores
    are data) and second derivatives are not implemented.
    """

    __props__ = ("clip",)

    def __init__(self, clip: float):
        self.clip = float(clip)

    def make_node(self, value, a, b):
        """Apply to three float vectors; three float vector outputs."""
        inputs = [as_tensor_variable(x).astype("float64") for x in (value, a, b)]
        for x in inputs:
            if x.type.ndim != 1:
                raise TypeError("BetaCellLogp takes vectors (one entry per cell)")
        out_type = TensorType("float64", shape=(None,))
        return Apply(self, inputs, [out_type() for _ in range(3)])

    def perform(self, node, inputs, output_storage):
        """Python-mode evaluation: the same compiled kernel, called from Python."""
        value, a, b = (np.ascontiguousarray(x, dtype=float) for x in inputs)
        for storage, out in zip(output_storage, beta_cell_logp(value, a, b, self.clip),
                                strict=True):
            storage[0] = out

    def infer_shape(self, node, shapes):
        """Every output has the cells' length."""
        return [shapes[0]] * 3

    def pullback(self, inputs, outputs, cotangents):
        """Gradient of the log density in ``a`` and ``b``: the cotangent times outputs 1, 2."""
        if any(not isinstance(g.type, DisconnectedType) for g in cotangents[1:]):
            raise NotImplementedError("BetaCellLogp has no second derivatives")
        g = cotangents[0]
        return [grad_undefined(self, 0, inputs[0], "the scores are data"),
                g * outputs[1], g * outputs[2]]

    def connection_pattern(self, node):
        """Every output depends on every input."""
        return [[True, True, True]] * 3


@register_funcify_default_op_cache_key(BetaCellLogp)
def _numba_funcify_beta_cell_logp(op, node, **kwargs):
    clip = op.clip

    @numba.njit
    def beta_cell_logp_op(value, a, b):
        return beta_cell_logp(value, a, b, clip)

    return beta_cell_logp_op


def beta_cell_logp_pt(value, a, b, clip: float):
    """PyTensor expression of :func:`beta_cell_logp`'s first output (one per cell)."""
    return BetaCellLogp(clip)(value, a, b)[0]
