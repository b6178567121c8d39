"""Loss laws: ``L = E + sum_k C_k / x_k^e_k`` with optional partial pooling over families.

The Chinchilla law ``L(N, D) = E + A/N^alpha + B/D^beta``, Kaplan's ``L(N) = E + A/N^alpha``
and the compute law ``L(C) = E + A/C^gamma`` are all instances: a spec's ``[law]`` lists
the irreducible term and the power-law terms (coefficient name, exponent name, the
covariate ``params``, ``tokens`` or ``flops``, and a reference scale).

Parameterisation for NUTS
-------------------------
A coefficient ``A`` and its exponent ``alpha`` are almost perfectly correlated when
``log N`` is around 20. The model therefore samples ``A_ref = A / N_ref^alpha``, the
loss the term contributes at the reference scale ``N_ref`` (about 0.1 to 1 nats for
any sensible reference), and reports ``A = A_ref * N_ref^alpha`` as a deterministic.
Priors are written on ``E``, ``A_ref`` and the exponents.

Hierarchy
---------
With ``hierarchy.group = "family"`` every law parameter is, per its mode,
``shared`` (one value for all families), ``separate`` (one independent value per
family, each with the spec's prior) or ``partial`` (family values pooled on the log
scale, non-centred: ``p_f = p_pop * exp(p_sd * p_z[f])`` with ``p_z ~ N(0, 1)``; the
spec's prior for ``p`` is the prior of the population median ``p_pop``, and
``p_sd`` has its own prior). Exponents and coefficients (E and the ``*_ref``) have
separate switches. An unseen family in a prediction draws new offsets from the
population (partial), from the prior (separate) or shares the value (shared).

Likelihood
----------
``log L_i ~ StudentT(nu, log mu_i, sigma)`` (robust, the Bayesian counterpart of the
Huber loss on log L used by Hoffmann et al. and Besiroglu et al.) or ``Normal``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayescale.data import check_known_families
from bayescale.errors import DataError, SpecError

if TYPE_CHECKING:
    import pymc as pm
    import xarray as xr

    from bayescale.spec import ModelSpec

VARIABLES = ("params", "tokens", "flops")
MODES = ("shared", "partial", "separate")
LIKELIHOODS = ("student_t", "normal")
NEW_FAMILY = "new_family"


@dataclass(frozen=True)
class Term:
    """One power-law term ``coefficient / variable^exponent``."""

    coefficient: str
    exponent: str
    variable: str
    reference: float

    @property
    def ref_name(self) -> str:
        """Name of the sampled coefficient at the reference scale."""
        return f"{self.coefficient}_ref"


def terms(spec: ModelSpec) -> list[Term]:
    """Return the power-law terms of a loss-law spec."""
    return [Term(t["coefficient"], t["exponent"], t["variable"], float(t["reference"]))
            for t in spec.law["terms"]]


def irreducible(spec: ModelSpec) -> str | None:
    """Return the name of the irreducible-loss parameter, or None."""
    return spec.law.get("irreducible")


def grouped(spec: ModelSpec) -> bool:
    """Whether the spec pools over families."""
    return spec.hierarchy.get("group", "none") != "none"


def law_parameters(spec: ModelSpec) -> list[tuple[str, str]]:
    """Return ``(sampled name, role)`` of every law parameter.

    ``role`` is ``"coefficient"`` (E and the ``*_ref``) or ``"exponent"``.
    """
    out = []
    if irreducible(spec):
        out.append((irreducible(spec), "coefficient"))
    for term in terms(spec):
        out.append((term.ref_name, "coefficient"))
        out.append((term.exponent, "exponent"))
    return out


def pooling_mode(spec: ModelSpec, role: str) -> str:
    """Pooling mode of parameters with ``role`` (``shared`` without a group)."""
    if not grouped(spec):
        return "shared"
    return spec.hierarchy["exponents" if role == "exponent" else "coefficients"]


class LossLawKind:
    """The ``loss-law`` model kind."""

    name = "loss-law"
    data_kind = "loss"
    observed_name = "log_loss"
    observed_data_name = "log_loss_data"

    # ------------------------------------------------------------------ spec
    def validate_spec(self, spec: ModelSpec) -> None:
        """Check the ``[law]``, ``[hierarchy]``, ``[likelihood]`` and ``[priors]`` sections."""
        where = spec.path or spec.name
        law = spec.law
        unknown = set(law) - {"form", "irreducible", "terms"}
        if unknown:
            raise SpecError(f"{where}: unknown [law] key(s) {', '.join(sorted(unknown))}")
        if not law.get("terms"):
            raise SpecError(f"{where}: [law] needs at least one entry in 'terms'")
        names = set()
        for i, term in enumerate(law["terms"]):
            if not isinstance(term, dict):
                raise SpecError(f"{where}: [law] terms[{i}] must be a table")
            missing = {"coefficient", "exponent", "variable", "reference"} - set(term)
            if missing:
                raise SpecError(f"{where}: [law] terms[{i}] lacks {', '.join(sorted(missing))}")
            extra = set(term) - {"coefficient", "exponent", "variable", "reference"}
            if extra:
                raise SpecError(f"{where}: [law] terms[{i}] has unknown key(s) "
                                f"{', '.join(sorted(extra))}")
            if term["variable"] not in VARIABLES:
                raise SpecError(f"{where}: [law] terms[{i}] variable must be one of "
                                f"{', '.join(VARIABLES)}, got {term['variable']!r}")
            if not isinstance(term["reference"], int | float) or term["reference"] <= 0:
                raise SpecError(f"{where}: [law] terms[{i}] reference must be a positive number")
            for key in ("coefficient", "exponent"):
                if term[key] in names:
                    raise SpecError(f"{where}: [law] parameter name '{term[key]}' used twice")
                names.add(term[key])
        hier = spec.hierarchy
        unknown = set(hier) - {"group", "exponents", "coefficients"}
        if unknown:
            raise SpecError(f"{where}: unknown [hierarchy] key(s) {', '.join(sorted(unknown))}")
        group = hier.get("group", "none")
        if group not in ("none", "family"):
            raise SpecError(f"{where}: [hierarchy] group must be 'none' or 'family', got {group!r}")
        if group == "family":
            for key in ("exponents", "coefficients"):
                if hier.get(key) not in MODES:
                    raise SpecError(f"{where}: [hierarchy] {key} must be one of "
                                    f"{', '.join(MODES)}, got {hier.get(key)!r}")
        lik = spec.likelihood
        unknown = set(lik) - {"distribution", "target"}
        if unknown:
            raise SpecError(f"{where}: unknown [likelihood] key(s) {', '.join(sorted(unknown))}")
        if lik.get("distribution", "student_t") not in LIKELIHOODS:
            raise SpecError(f"{where}: [likelihood] distribution must be one of "
                            f"{', '.join(LIKELIHOODS)}")
        if lik.get("target", "log_loss") != "log_loss":
            raise SpecError(f"{where}: [likelihood] target must be 'log_loss'")
        required = {"sigma"}
        if lik.get("distribution", "student_t") == "student_t":
            required.add("nu")
        for pname, role in law_parameters(spec):
            required.add(pname)
            if pooling_mode(spec, role) == "partial":
                required.add(f"{pname}_sd")
        missing = required - set(spec.priors)
        if missing:
            raise SpecError(f"{where}: [priors] lacks {', '.join(sorted(missing))}")
        # pooling scales of parameters that the hierarchy switches do not pool are allowed
        # (so that one spec can be refit with exponents shared, partial or separate)
        switchable = {f"{pname}_sd" for pname, _ in law_parameters(spec)} if grouped(spec) \
            else set()
        extra = set(spec.priors) - required - switchable
        if extra:
            raise SpecError(f"{where}: [priors] has prior(s) the model does not use: "
                            f"{', '.join(sorted(extra))}")
        for pname in required:
            if pname != "nu" and not spec.priors[pname].positive:
                raise SpecError(f"{where}: prior '{pname}' must have positive support "
                                f"(got {spec.priors[pname].describe()})")
        unknown = set(spec.requirements) - {"min_rows", "min_families"}
        if unknown:
            raise SpecError(f"{where}: unknown [requirements] key(s) "
                            f"{', '.join(sorted(unknown))}")

    # ------------------------------------------------------------------ data
    def check_data(self, spec: ModelSpec, table: pd.DataFrame, source: str) -> None:
        """Check that the loss runs can be fit with this spec."""
        min_rows = int(spec.requirements.get("min_rows", 5))
        if len(table) < min_rows:
            raise DataError(f"spec '{spec.name}' needs at least {min_rows} data rows, got "
                            f"{len(table)}", source=source)
        n_families = table["family"].nunique()
        min_families = int(spec.requirements.get("min_families", 2))
        if grouped(spec) and n_families < min_families:
            raise DataError(f"spec '{spec.name}' pools over families and needs at least "
                            f"{min_families}, got {n_families}", source=source, column="family")
        if not grouped(spec) and n_families > 1:
            raise DataError(
                f"spec '{spec.name}' fits one family but the data has {n_families} "
                f"({', '.join(sorted(table['family'].unique())[:8])}); use a hierarchical spec "
                "or select one family",
                source=source, column="family")

    def coords(self, spec: ModelSpec, table: pd.DataFrame) -> dict[str, list]:
        """Return ``{"family": [...], "obs": [...]}``."""
        return {"family": sorted(table["family"].unique()), "obs": list(range(len(table)))}

    # ------------------------------------------------------------------ model
    def _parameter(self, spec: ModelSpec, pname: str, role: str, *, family_index,
                   new_families: int):
        """Create one law parameter and return its value per row (a tensor).

        ``family_index`` maps rows to families; indices at or beyond the number of known
        families refer to unseen families (prediction only).
        """
        import pymc as pm
        import pytensor.tensor as pt

        prior = spec.priors[pname]
        mode = pooling_mode(spec, role)
        if mode == "shared":
            return prior.create(pname)
        if mode == "separate":
            known = prior.create(pname, dims="family")
            values = known
            if new_families:
                values = pt.concatenate([known, prior.create(f"{pname}_new", dims=NEW_FAMILY)])
            return values[family_index]
        pop = prior.create(f"{pname}_pop")
        scale = spec.priors[f"{pname}_sd"].create(f"{pname}_sd")
        z = pm.Normal(f"{pname}_z", 0.0, 1.0, dims="family")
        known = pm.Deterministic(pname, pop * pt.exp(scale * z), dims="family")
        values = known
        if new_families:
            z_new = pm.Normal(f"{pname}_z_new", 0.0, 1.0, dims=NEW_FAMILY)
            values = pt.concatenate([known, pop * pt.exp(scale * z_new)])
        return values[family_index]

    def _graph(self, spec: ModelSpec, covariates: pd.DataFrame, family_index: np.ndarray,
               new_families: int):
        """Add every law parameter and the mean log-loss per row to the current model."""
        import pymc as pm
        import pytensor.tensor as pt

        family_dims = "family" if grouped(spec) else None
        total = 0.0
        if irreducible(spec):
            total = self._parameter(spec, irreducible(spec), "coefficient",
                                    family_index=family_index, new_families=new_families)
        for term in terms(spec):
            coef_ref = self._parameter(spec, term.ref_name, "coefficient",
                                       family_index=family_index, new_families=new_families)
            exponent = self._parameter(spec, term.exponent, "exponent",
                                       family_index=family_index, new_families=new_families)
            log_x = np.log(covariates[term.variable].to_numpy(float)) - np.log(term.reference)
            total = total + coef_ref * pt.exp(-exponent * log_x)
            # the coefficient on the natural scale, for reports: A = A_ref * N_ref^alpha
            model = pm.modelcontext(None)
            ref_var, exp_var = model[term.ref_name], model[term.exponent]
            dims = family_dims if (ref_var.ndim or exp_var.ndim) else None
            pm.Deterministic(term.coefficient,
                             ref_var * pt.exp(exp_var * np.log(term.reference)), dims=dims)
        return pt.log(total)

    def _likelihood(self, spec: ModelSpec, mu, observed, dims: str):
        import pymc as pm

        sigma = spec.priors["sigma"].create("sigma")
        if spec.likelihood.get("distribution", "student_t") == "student_t":
            nu = spec.priors["nu"].create("nu")
            return pm.StudentT(self.observed_name, nu=nu, mu=mu, sigma=sigma,
                               observed=observed, dims=dims)
        return pm.Normal(self.observed_name, mu=mu, sigma=sigma, observed=observed, dims=dims)

    def build(self, spec: ModelSpec, table: pd.DataFrame) -> pm.Model:
        """Build the fit model on canonical loss runs."""
        import pymc as pm

        coords = self.coords(spec, table)
        family_index = pd.Categorical(table["family"], categories=coords["family"]).codes
        with pm.Model(coords=coords) as model:
            mu = self._graph(spec, table, family_index, new_families=0)
            # observations as data, so a compiled model can be refit to simulated data sets
            observed = pm.Data(self.observed_data_name, np.log(table["loss"].to_numpy(float)),
                               dims="obs")
            self._likelihood(spec, mu, observed, "obs")
        return model

    def build_predictive(self, spec: ModelSpec, families: list[str], rows: pd.DataFrame):
        """Build the prediction model for ``rows`` (same variable names as the fit model).

        Returns
        -------
        model : pm.Model
        new_families : list of str
            Families of ``rows`` not seen in training, drawn from the population.
        """
        import pymc as pm

        if grouped(spec):
            new = sorted(set(rows["family"]) - set(families))
            categories = list(families) + new
            family_index = pd.Categorical(rows["family"], categories=categories).codes
        else:
            new = []
            family_index = np.zeros(len(rows), dtype=int)
        coords = {"family": list(families), NEW_FAMILY: new, "row": list(range(len(rows)))}
        with pm.Model(coords=coords) as model:
            mu = self._graph(spec, rows, family_index, new_families=len(new))
            pm.Deterministic("mu", mu, dims="row")
            self._likelihood(spec, mu, None, "row")
        return model, new

    def summary_var_names(self, spec: ModelSpec) -> list[str]:
        """Law parameters on the natural scale, population parameters, then noise."""
        names = []
        if irreducible(spec):
            names.append(irreducible(spec))
        names += [term.coefficient for term in terms(spec)]
        names += [term.exponent for term in terms(spec)]
        pop = []
        for pname, role in law_parameters(spec):
            if pooling_mode(spec, role) == "partial":
                pop += [f"{pname}_pop", f"{pname}_sd"]
        names += pop + ["sigma"]
        if spec.likelihood.get("distribution", "student_t") == "student_t":
            names.append("nu")
        return names

    def simulated_table(self, design: pd.DataFrame, simulated: np.ndarray) -> pd.DataFrame:
        """Return ``design`` with its losses replaced by simulated log-losses."""
        return design.assign(loss=np.exp(np.asarray(simulated, dtype=float)))

    def observed_values(self, spec: ModelSpec, table: pd.DataFrame) -> np.ndarray:
        """Return the observations the fit model conditions on (log-losses, row order)."""
        return np.log(table["loss"].to_numpy(float))

    def required_columns(self, spec: ModelSpec) -> list[str]:
        """Covariate columns a prediction row needs."""
        cols = sorted({t.variable for t in terms(spec)})
        return (["family"] if grouped(spec) else []) + cols

    def predict(self, posterior, rows: pd.DataFrame, *, seed: int) -> xr.Dataset:
        """Posterior predictive of the mean log-loss ``mu`` and a new observation ``y``.

        Parameters
        ----------
        posterior : bayescale.posterior.Posterior
            A fitted loss-law posterior.
        rows : DataFrame
            Canonical covariates (``params``, ``tokens``, ``flops``; ``family`` for a
            hierarchical spec).
        seed : int
            Seed of the predictive draws.

        Returns
        -------
        xarray.Dataset
            ``mu`` and ``y`` on the loss scale (nats), dims ``(chain, draw, row)``.
        """
        import pymc as pm

        spec = posterior.spec
        families = list(posterior.families)
        if not grouped(spec) and "family" in rows:
            check_known_families(rows, families, source="prediction rows")
        model, new = self.build_predictive(spec, families, rows)
        sample_vars = ["mu", self.observed_name] + [v.name for v in model.free_RVs
                                                     if v.name.endswith("_new")]
        with model:
            pred = pm.sample_posterior_predictive(
                posterior.tree, var_names=["mu", self.observed_name], sample_vars=sample_vars,
                predictions=True, random_seed=seed, progressbar=False)
        ds = pred["predictions"].dataset
        out = ds[["mu", self.observed_name]].rename({self.observed_name: "y"})
        return np.exp(out)


KIND = LossLawKind()


def law_values(posterior, family: str | None = None) -> dict[str, xr.DataArray]:
    """Draws of every law parameter (natural scale) for one family or the population.

    Parameters
    ----------
    posterior : bayescale.posterior.Posterior
        A fitted loss-law posterior.
    family : str, optional
        A training family. Without it, a hierarchical fit gives the population's
        typical family (the population medians ``*_pop`` of partially pooled
        parameters, the common value of shared ones).

    Returns
    -------
    dict of str to xarray.DataArray
        ``E``, each coefficient and exponent, dims ``(chain, draw)``.

    Raises
    ------
    DataError
        If ``family`` is unknown, or a family is needed (separate parameters).
    """
    spec = posterior.spec
    post = posterior.posterior
    if family is not None:
        check_known_families(pd.DataFrame({"family": [family]}), posterior.families,
                             source="--family")

    def value(pname: str, role: str):
        mode = pooling_mode(spec, role)
        if mode == "shared":
            return post[pname]
        if family is not None:
            return post[pname].sel(family=family, drop=True)
        if mode == "partial":
            return post[f"{pname}_pop"]
        raise DataError(f"spec '{spec.name}' fits '{pname}' separately per family: name a "
                        "family (there is no population value)", source="--family")

    out: dict[str, xr.DataArray] = {}
    if irreducible(spec):
        out[irreducible(spec)] = value(irreducible(spec), "coefficient")
    for term in terms(spec):
        exponent = value(term.exponent, "exponent")
        out[term.exponent] = exponent
        out[term.coefficient] = value(term.ref_name, "coefficient") * np.exp(
            exponent * np.log(term.reference))
    return out
