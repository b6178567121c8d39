"""Model specifications: TOML files in ``models/`` that record what is fit.

A spec is data, not code. It names the model kind, the law (or the latent-skills
structure), the hierarchy, every prior, the likelihood, data requirements and the
sampler settings. :func:`load_spec` reads a spec by name (``models/NAME.toml``) or
by path and validates it: unknown keys, unknown distributions and bad
distribution parameters raise :class:`~bayescale.errors.SpecError`.

The validated spec keeps its TOML source text so that a fitted posterior records
exactly what was fit.
"""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayescale.errors import SpecError

#: Directory of the specs shipped with the project.
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"

#: Distributions a prior may use, with the parameters each accepts.
PRIOR_DISTRIBUTIONS: dict[str, set[str]] = {
    "Normal": {"mu", "sigma"},
    "HalfNormal": {"sigma"},
    "LogNormal": {"mu", "sigma"},
    "Gamma": {"alpha", "beta"},
    "Exponential": {"lam"},
    "StudentT": {"nu", "mu", "sigma"},
    "HalfStudentT": {"nu", "sigma"},
    "HalfCauchy": {"beta"},
    "TruncatedNormal": {"mu", "sigma", "lower", "upper"},
    "Uniform": {"lower", "upper"},
    "Beta": {"alpha", "beta"},
    # correlation matrices (their Cholesky factor): only for the correlation of a skills
    # model's family intercepts (prior ``family_correlation``)
    "LKJCorr": {"eta"},
}

#: Distributions over matrices rather than scalars: only the priors named here take them.
MATRIX_DISTRIBUTIONS = {"LKJCorr": {"family_correlation"}}

#: Distributions whose support is the positive reals (usable for scales and
#: for parameters pooled on the log scale).
POSITIVE_DISTRIBUTIONS = {"HalfNormal", "LogNormal", "Gamma", "Exponential", "HalfStudentT",
                          "HalfCauchy"}

SAMPLERS = ("nutpie", "pymc", "numpyro")

_SAMPLER_DEFAULTS: dict[str, Any] = {
    "draws": 1000,
    "tune": 1000,
    "chains": 4,
    "target_accept": 0.9,
    "seed": 0,
    "backend": "nutpie",
    # nutpie's mass-matrix adaptation: "low_rank" learns the strong correlations of scaling
    # laws (E with B and beta, A with alpha); on the Chinchilla law it gave 4x the ESS of
    # "diag" in a fifth of the time. Ignored by the other samplers.
    "adaptation": "low_rank",
}
ADAPTATIONS = ("diag", "draw_diag", "low_rank")

_TOP_LEVEL_KEYS = {"name", "kind", "description", "law", "hierarchy", "skills", "priors",
                   "likelihood", "sampler", "requirements"}


@dataclass(frozen=True)
class Prior:
    """A prior distribution written in a spec.

    Parameters
    ----------
    dist : str
        Name of a PyMC distribution in :data:`PRIOR_DISTRIBUTIONS`.
    params : dict
        Its parameters, as keyword arguments of the PyMC distribution.
    """

    dist: str
    params: dict[str, float]

    @property
    def positive(self) -> bool:
        """Whether the distribution's support is the positive reals."""
        if self.dist in POSITIVE_DISTRIBUTIONS:
            return True
        if self.dist == "TruncatedNormal":
            return self.params.get("lower", float("-inf")) >= 0
        if self.dist == "Uniform":
            return self.params["lower"] >= 0
        return False

    def create(self, name: str, **kwargs: Any):
        """Create this prior as a random variable in the current PyMC model.

        Parameters
        ----------
        name : str
            Variable name.
        **kwargs
            Passed on to the distribution (``dims``, ``shape``, ...).
        """
        import pymc as pm

        return getattr(pm, self.dist)(name, **self.params, **kwargs)

    def describe(self) -> str:
        """Return the prior as ``Dist(a=1, b=2)``."""
        args = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{self.dist}({args})"


@dataclass
class ModelSpec:
    """A validated model specification.

    Attributes
    ----------
    name, kind, description : str
        Identity of the spec; ``kind`` selects the model-kind module.
    law, hierarchy, skills, likelihood, requirements : dict
        Kind-specific sections, validated by the kind.
    priors : dict of str to Prior
        Every prior of the model, by parameter name.
    sampler : dict
        ``draws, tune, chains, target_accept, seed, backend``.
    source : str
        The TOML text the spec was read from (after any overrides are applied,
        :meth:`to_toml_dict` gives the effective settings).
    path : str
        Where it was read from.
    """

    name: str
    kind: str
    description: str
    law: dict[str, Any]
    hierarchy: dict[str, Any]
    skills: dict[str, Any]
    priors: dict[str, Prior]
    likelihood: dict[str, Any]
    sampler: dict[str, Any]
    requirements: dict[str, Any]
    source: str = ""
    path: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    def with_overrides(self, **sections: dict[str, Any]) -> ModelSpec:
        """Return a copy with some keys of some sections replaced, re-validated.

        Parameters
        ----------
        **sections
            ``sampler={"draws": 200}``, ``hierarchy={"exponents": "shared"}``, ...
        """
        raw = copy.deepcopy(self.raw)
        for section, values in sections.items():
            if section not in _TOP_LEVEL_KEYS:
                raise SpecError(f"{self.path or self.name}: unknown section '{section}'")
            if values is None:
                continue
            if isinstance(values, dict):
                raw.setdefault(section, {})
                raw[section].update({k: v for k, v in values.items() if v is not None})
            else:
                raw[section] = values
        spec = parse_spec(raw, source=self.source, path=self.path)
        return spec

    def to_json(self) -> str:
        """Return the effective spec (all sections, defaults filled) as JSON."""
        doc = copy.deepcopy(self.raw)
        doc["sampler"] = dict(self.sampler)
        return json.dumps(doc, sort_keys=True, default=str)

    @property
    def config_id(self) -> str:
        """Short hash of the effective spec, checked when a posterior is loaded."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


def available_specs() -> list[str]:
    """Return the names of the specs shipped in ``models/``."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.toml"))


def load_spec(name_or_path: str | Path) -> ModelSpec:
    """Read and validate a spec by name (``models/NAME.toml``) or by path.

    Parameters
    ----------
    name_or_path : str or Path
        A shipped spec name such as ``"chinchilla"`` or a path to a TOML file.

    Returns
    -------
    ModelSpec

    Raises
    ------
    SpecError
        If the file is missing, is not valid TOML, or fails validation.
    """
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = MODELS_DIR / f"{name_or_path}.toml"
        if not path.exists():
            raise SpecError(
                f"unknown spec '{name_or_path}': not a file, and not one of the shipped specs "
                f"({', '.join(available_specs())})"
            )
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read spec file ({exc.strerror})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    return parse_spec(raw, source=text, path=str(path))


def spec_from_text(text: str, *, path: str = "<text>") -> ModelSpec:
    """Parse a spec from TOML text (used when a posterior file is loaded)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    return parse_spec(raw, source=text, path=path)


def parse_prior(value: Any, *, where: str) -> Prior:
    """Validate one prior table ``{dist = "Normal", mu = 0, sigma = 1}``."""
    if not isinstance(value, dict):
        raise SpecError(f"{where}: a prior must be a table like {{dist = \"Normal\", mu = 0, "
                        f"sigma = 1}}, got {value!r}")
    if "dist" not in value:
        raise SpecError(f"{where}: prior has no 'dist' key")
    dist = value["dist"]
    if dist not in PRIOR_DISTRIBUTIONS:
        raise SpecError(f"{where}: unknown distribution '{dist}' (known: "
                        f"{', '.join(sorted(PRIOR_DISTRIBUTIONS))})")
    params = {k: v for k, v in value.items() if k != "dist"}
    allowed = PRIOR_DISTRIBUTIONS[dist]
    unknown = set(params) - allowed
    if unknown:
        raise SpecError(f"{where}: {dist} has no parameter(s) {', '.join(sorted(unknown))} "
                        f"(it takes {', '.join(sorted(allowed))})")
    required = allowed - {"lower", "upper"} if dist == "TruncatedNormal" else allowed
    missing = required - set(params)
    if missing:
        raise SpecError(f"{where}: {dist} needs parameter(s) {', '.join(sorted(missing))}")
    for key, val in params.items():
        if isinstance(val, bool) or not isinstance(val, int | float):
            raise SpecError(f"{where}: parameter '{key}' must be a number, got {val!r}")
    positive_params = {"sigma", "beta", "alpha", "lam", "nu", "eta"}
    for key in positive_params & set(params):
        if key == "beta" and dist not in {"Gamma", "HalfCauchy", "Beta"}:
            continue
        if params[key] <= 0:
            raise SpecError(f"{where}: parameter '{key}' of {dist} must be > 0, got {params[key]}")
    if "lower" in params and "upper" in params and params["lower"] >= params["upper"]:
        raise SpecError(f"{where}: lower bound {params['lower']} is not below upper bound "
                        f"{params['upper']}")
    return Prior(dist=dist, params={k: float(v) for k, v in params.items()})


def parse_spec(raw: dict[str, Any], *, source: str = "", path: str = "<dict>") -> ModelSpec:
    """Validate a spec given as a dictionary (the parsed TOML)."""
    unknown = set(raw) - _TOP_LEVEL_KEYS
    if unknown:
        raise SpecError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))} "
                        f"(allowed: {', '.join(sorted(_TOP_LEVEL_KEYS))})")
    for key in ("name", "kind"):
        if key not in raw:
            raise SpecError(f"{path}: missing required key '{key}'")
    priors_raw = raw.get("priors", {})
    if not isinstance(priors_raw, dict):
        raise SpecError(f"{path}: [priors] must be a table")
    priors = {k: parse_prior(v, where=f"{path}: prior '{k}'") for k, v in priors_raw.items()}
    for k, prior in priors.items():
        if prior.dist in MATRIX_DISTRIBUTIONS and k not in MATRIX_DISTRIBUTIONS[prior.dist]:
            raise SpecError(f"{path}: prior '{k}': {prior.dist} is a distribution of "
                            "correlation matrices; only prior(s) "
                            f"{', '.join(sorted(MATRIX_DISTRIBUTIONS[prior.dist]))} take it")

    sampler = dict(_SAMPLER_DEFAULTS)
    sampler_raw = raw.get("sampler", {})
    unknown = set(sampler_raw) - set(_SAMPLER_DEFAULTS)
    if unknown:
        raise SpecError(f"{path}: unknown [sampler] key(s) {', '.join(sorted(unknown))} "
                        f"(allowed: {', '.join(_SAMPLER_DEFAULTS)})")
    sampler.update(sampler_raw)
    for key in ("draws", "tune", "chains"):
        if not isinstance(sampler[key], int) or isinstance(sampler[key], bool) or sampler[key] < 1:
            raise SpecError(f"{path}: [sampler] {key} must be a positive integer, "
                            f"got {sampler[key]!r}")
    if not 0.5 <= float(sampler["target_accept"]) < 1:
        raise SpecError(f"{path}: [sampler] target_accept must be in [0.5, 1), "
                        f"got {sampler['target_accept']!r}")
    if sampler["backend"] not in SAMPLERS:
        raise SpecError(f"{path}: [sampler] backend must be one of {', '.join(SAMPLERS)}, "
                        f"got {sampler['backend']!r}")
    if sampler["adaptation"] not in ADAPTATIONS:
        raise SpecError(f"{path}: [sampler] adaptation must be one of {', '.join(ADAPTATIONS)}, "
                        f"got {sampler['adaptation']!r}")
    if not isinstance(sampler["seed"], int):
        raise SpecError(f"{path}: [sampler] seed must be an integer")

    spec = ModelSpec(
        name=str(raw["name"]),
        kind=str(raw["kind"]),
        description=str(raw.get("description", "")),
        law=dict(raw.get("law", {})),
        hierarchy=dict(raw.get("hierarchy", {})),
        skills=dict(raw.get("skills", {})),
        priors=priors,
        likelihood=dict(raw.get("likelihood", {})),
        sampler=sampler,
        requirements=dict(raw.get("requirements", {})),
        source=source,
        path=path,
        raw=copy.deepcopy(raw),
    )
    from bayescale.kinds import get_kind

    get_kind(spec.kind, where=path).validate_spec(spec)
    return spec
