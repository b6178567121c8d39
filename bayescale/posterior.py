"""The fitted posterior: an xarray DataTree plus what is needed to reproduce and use it.

Groups: ``posterior``, ``sample_stats``, ``observed_data`` (from the sampler),
``fit_data`` (the canonical training table, one row per ``row``), ``excluded_data``
(rows excluded before fitting, with the reason) and, after prediction, nothing else:
predictions are returned, not stored. Root attributes record the spec (TOML source
and its effective JSON), the config id, the seed, package versions, the data source
and the diagnostics.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.errors import RunDirError, SpecError
from bayescale.interrupts import COMMIT_LOCK, pending_path, raise_if_interrupted
from bayescale.sample import Diagnostics
from bayescale.spec import ModelSpec, parse_spec

if TYPE_CHECKING:
    from collections.abc import Iterator

FORMAT = "bayescale-posterior-1"
_VERSIONED = ("bayescale", "pymc", "pytensor", "arviz", "nutpie", "numpy", "pandas", "xarray")


def package_versions() -> dict[str, str]:
    """Versions of the packages that produced a fit."""
    out = {}
    for name in _VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _table_to_dataset(table: pd.DataFrame) -> xr.Dataset:
    """Convert a DataFrame to a Dataset with dim ``row``; strings become object arrays."""
    frame = table.reset_index(drop=True).copy()
    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]) and \
                not pd.api.types.is_bool_dtype(frame[col]):
            frame[col] = frame[col].astype(object).where(frame[col].notna(), "")
            frame[col] = frame[col].astype(str).astype(object)
        elif pd.api.types.is_extension_array_dtype(frame[col]):
            frame[col] = frame[col].astype(float)
    frame.index.name = "row"
    return xr.Dataset.from_dataframe(frame)


def _dataset_to_table(ds: xr.Dataset) -> pd.DataFrame:
    frame = ds.to_dataframe().reset_index(drop=True)
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].astype(str)
    return frame


class Posterior:
    """A fitted model: posterior draws, diagnostics, training data and spec.

    Parameters
    ----------
    tree : xarray.DataTree
        The DataTree with the groups described in the module docstring.

    Notes
    -----
    Build one with :func:`bayescale.fit` or :meth:`Posterior.load`.
    """

    def __init__(self, tree: xr.DataTree) -> None:
        self.tree = tree

    # ---------------------------------------------------------------- creation
    @classmethod
    def create(cls, tree: xr.DataTree, *, spec: ModelSpec, table: pd.DataFrame,
               excluded: pd.DataFrame, source: str, diagnostics: Diagnostics,
               seed: int, extra_attrs: dict[str, Any] | None = None) -> Posterior:
        """Attach training data, spec, versions and diagnostics to a sampled tree."""
        tree = tree.copy()
        tree["fit_data"] = xr.DataTree(_table_to_dataset(table))
        if len(excluded):
            tree["excluded_data"] = xr.DataTree(_table_to_dataset(excluded))
        tree.attrs.update({
            "format": FORMAT,
            "spec_toml": spec.source,
            "spec_json": spec.to_json(),
            "spec_id": spec.config_id,
            "spec_path": spec.path,
            "seed": int(seed),
            "versions": json.dumps(package_versions()),
            "data_source": source,
            "diagnostics": json.dumps(diagnostics.to_dict()),
            **(extra_attrs or {}),
        })
        return cls(tree)

    # ---------------------------------------------------------------- accessors
    @cached_property
    def spec(self) -> ModelSpec:
        """The spec that was fit (with the sampler settings actually used)."""
        raw = json.loads(self.tree.attrs["spec_json"])
        spec = parse_spec(raw, source=self.tree.attrs.get("spec_toml", ""),
                          path=self.tree.attrs.get("spec_path", "<posterior>"))
        if spec.config_id != self.tree.attrs.get("spec_id"):
            raise SpecError("the spec stored in the posterior does not match its config id: "
                            "the file was edited or written by an incompatible version")
        return spec

    @property
    def kind(self):
        """The model-kind object of the spec."""
        from bayescale.kinds import get_kind

        return get_kind(self.spec.kind)

    @property
    def posterior(self) -> xr.Dataset:
        """Posterior draws, dims ``(chain, draw, ...)``."""
        return self.tree["posterior"].dataset

    @cached_property
    def fit_table(self) -> pd.DataFrame:
        """The canonical training table."""
        return _dataset_to_table(self.tree["fit_data"].dataset)

    @cached_property
    def excluded_table(self) -> pd.DataFrame:
        """Rows excluded before fitting, with a ``reason`` column (may be empty)."""
        if "excluded_data" in self.tree.children:
            return _dataset_to_table(self.tree["excluded_data"].dataset)
        return pd.DataFrame(columns=["reason"])

    @property
    def families(self) -> list[str]:
        """Families seen in training, sorted."""
        return sorted(self.fit_table["family"].unique())

    @property
    def diagnostics(self) -> Diagnostics:
        """Convergence diagnostics recorded at fit time."""
        raw = json.loads(self.tree.attrs["diagnostics"])
        fields = Diagnostics.__dataclass_fields__
        return Diagnostics(**{k: v for k, v in raw.items() if k in fields})

    @property
    def seed(self) -> int:
        """Seed of the fit."""
        return int(self.tree.attrs["seed"])

    @property
    def versions(self) -> dict[str, str]:
        """Package versions at fit time."""
        return json.loads(self.tree.attrs["versions"])

    # ---------------------------------------------------------------- summaries
    def summary(self, *, var_names: list[str] | None = None, ci_prob: float = 0.95
                ) -> pd.DataFrame:
        """Posterior summary, one row per scalar element.

        Parameters
        ----------
        var_names : list of str, optional
            Variables to include (default: the kind's summary parameters).
        ci_prob : float
            Probability of the central interval, giving columns ``q{lo}``, ``q50``, ``q{hi}``.

        Returns
        -------
        DataFrame
            Columns ``name, mean, sd, q2.5, q50, q97.5, r_hat, ess_bulk, ess_tail``
            (quantile names follow ``ci_prob``); vector elements are named like
            ``alpha[llama]``.
        """
        import arviz as az

        names = var_names or [v for v in self.kind.summary_var_names(self.spec)
                              if v in self.posterior]
        post = self.posterior[names]
        lo, hi = (1 - ci_prob) / 2, 1 - (1 - ci_prob) / 2
        quant = post.quantile([lo, 0.5, hi], dim=("chain", "draw"))
        mean = post.mean(("chain", "draw"))
        sd = post.std(("chain", "draw"), ddof=1)
        sub = self.tree.copy()
        sub["posterior"] = xr.DataTree(post)
        from bayescale.sample import quiet_constant_draws

        with quiet_constant_draws():
            rhat = az.rhat(sub).dataset
            bulk = az.ess(sub, method="bulk").dataset
            tail = az.ess(sub, method="tail").dataset
        rows = []
        qlabels = [f"q{_pct(lo)}", "q50", f"q{_pct(hi)}"]
        for name in names:
            da = post[name]
            dims = [d for d in da.dims if d not in ("chain", "draw")]
            index = [()] if not dims else list(np.ndindex(*[da.sizes[d] for d in dims]))
            for idx in index:
                sel = dict(zip(dims, idx, strict=True))
                label = name if not dims else name + "[" + ",".join(
                    str(da[d].values[i]) for d, i in sel.items()) + "]"
                q = quant[name].isel(sel).values
                rows.append({
                    "name": label,
                    "mean": float(mean[name].isel(sel)),
                    "sd": float(sd[name].isel(sel)),
                    qlabels[0]: float(q[0]), "q50": float(q[1]), qlabels[2]: float(q[2]),
                    "r_hat": float(rhat[name].isel(sel)),
                    "ess_bulk": float(bulk[name].isel(sel)),
                    "ess_tail": float(tail[name].isel(sel)),
                })
        return pd.DataFrame(rows)

    # ---------------------------------------------------------------- model comparison
    def log_likelihood(self) -> xr.Dataset:
        """Pointwise log likelihood of the training data, dims ``(chain, draw, ...)``.

        The fit model is rebuilt from the stored spec and training table (the same
        code that was fit), so nothing extra has to be stored at fit time. A kind may
        define its own ``log_likelihood(posterior)`` (e.g. grouping cells by model).
        """
        import pymc as pm

        kind = self.kind
        if hasattr(kind, "log_likelihood"):
            return kind.log_likelihood(self)
        model = kind.build(self.spec, self.fit_table)
        out = pm.compute_log_likelihood(self.tree, model=model, extend_inferencedata=False,
                                        progressbar=False)
        return out["log_likelihood"].dataset if hasattr(out, "children") else out

    def loo(self):
        """PSIS-LOO (``arviz.loo``) of the training data, with Pareto-k diagnostics."""
        import arviz as az

        ll = self.log_likelihood()
        tree = xr.DataTree.from_dict({"posterior": self.posterior, "log_likelihood": ll})
        return az.loo(tree, var_name=next(iter(ll.data_vars)))

    # ---------------------------------------------------------------- I/O
    def save(self, path: str | os.PathLike) -> Path:
        """Write the posterior to netCDF atomically (temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _atomic_path(path) as tmp:
            self.tree.to_netcdf(tmp, engine="h5netcdf")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Posterior:
        """Read a posterior written by :meth:`save`.

        Raises
        ------
        RunDirError
            If the file is missing, truncated, not netCDF, or not a bayescale posterior.
        """
        path = Path(path)
        if path.is_dir():
            path = path / "posterior.nc"
        if not path.exists():
            raise RunDirError(f"{path}: no such file (expected a run directory written by "
                              "'bayescale fit' or a posterior.nc)")
        try:
            tree = xr.open_datatree(path, engine="h5netcdf")
            tree = tree.load()
        except Exception as exc:  # h5py/netCDF raise many types for damaged files
            raise RunDirError(f"{path}: cannot read posterior file, it is truncated or not "
                              f"netCDF ({type(exc).__name__}: {exc})") from None
        if tree.attrs.get("format") != FORMAT or "posterior" not in tree.children \
                or "fit_data" not in tree.children:
            raise RunDirError(f"{path}: not a bayescale posterior (no '{FORMAT}' format tag "
                              "or missing posterior/fit_data groups)")
        post = cls(tree)
        try:
            post.spec  # noqa: B018 - validates the stored spec and its id
        except SpecError as exc:
            raise RunDirError(f"{path}: {exc}") from None
        return post


def _pct(p: float) -> str:
    text = f"{100 * p:.3f}".rstrip("0").rstrip(".")
    return text


@contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with pending_path(tmp_path):
            yield tmp_path
            with COMMIT_LOCK:
                raise_if_interrupted()
                os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    with _atomic_path(path) as tmp:
        tmp.write_text(text)


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` only if the block succeeds.

    An exception (including KeyboardInterrupt) removes the temporary directory and
    leaves any existing ``path`` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path}: exists and is not a directory")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        with pending_path(tmp):
            yield tmp
            with COMMIT_LOCK:
                raise_if_interrupted()
                if path.exists():
                    old = path.with_name(f".{path.name}.old-{os.getpid()}")
                    os.replace(path, old)
                    os.replace(tmp, path)
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
