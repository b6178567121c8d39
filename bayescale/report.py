"""Posterior reports: one self-contained HTML file and a Markdown twin.

:func:`build_report` turns a fitted run (and optionally a backtest directory written by
:func:`bayescale.evaluate.backtest`) into a :class:`Report`: the model spec; the data
used and excluded; convergence diagnostics with pass/fail flags, energy and rank plots;
the parameter table with 90% intervals; prior against posterior; the posterior
predictive check; extrapolation fan charts; the compute-optimal allocation (loss laws
in N and D); family efficiency (more than one family); and, with a backtest,
calibration (coverage against nominal level, PIT histogram) and the error table.

:meth:`Report.write` writes ``report.html`` (every image embedded as a base64 PNG
``data:`` URI, CSS inline, no scripts, no network references) and ``report.md`` beside
it, whose images are PNG files in the folder ``report_files/`` next to it. Both are
written atomically (temporary name, then rename).

A section that cannot be produced (for example a plot a model kind does not support)
is replaced by a visible warning box naming the error; the rest of the report is kept.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayescale.errors import BayescaleError, RunDirError
from bayescale.posterior import Posterior, atomic_directory, write_text_atomic

log = logging.getLogger(__name__)

#: Probability of the central intervals in the report's tables.
CI_PROB = 0.9
#: Resolution of the embedded PNGs.
DPI = 90


# ---------------------------------------------------------------------- building blocks
@dataclass
class Figure:
    """A rendered figure.

    Attributes
    ----------
    name : str
        File stem (used for the Markdown twin's image files).
    title : str
        Caption title.
    png : bytes
        The PNG image.
    caption : str
        Text under the figure.
    axes : list of dict
        For each visible axes: ``title``, ``xlabel``, ``ylabel``, ``n_series`` (labelled
        artists) and ``legend`` (whether the axes or figure has a legend); ``suptitle``
        of the figure is in every entry.
    """

    name: str
    title: str
    png: bytes
    caption: str = ""
    axes: list[dict[str, Any]] = field(default_factory=list)

    def data_uri(self) -> str:
        """Return the PNG as a ``data:image/png;base64,...`` URI."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass
class Block:
    """One element of a section: ``text``, ``code``, ``table``, ``figure`` or ``warning``."""

    kind: str
    content: Any
    caption: str = ""


@dataclass
class Section:
    """A titled report section."""

    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)

    def text(self, text: str) -> None:
        """Append a paragraph (plain text; HTML-escaped on output)."""
        self.blocks.append(Block("text", text))

    def code(self, text: str) -> None:
        """Append preformatted text."""
        self.blocks.append(Block("code", text))

    def table(self, frame: pd.DataFrame, caption: str = "") -> None:
        """Append a table."""
        self.blocks.append(Block("table", frame, caption))

    def figure(self, figure: Figure) -> None:
        """Append a figure."""
        self.blocks.append(Block("figure", figure))

    def warning(self, text: str) -> None:
        """Append a warning box."""
        self.blocks.append(Block("warning", text))


@dataclass
class Report:
    """A posterior report (see the module docstring).

    Attributes
    ----------
    title : str
    sections : list of Section
    meta : dict
        Run metadata (spec, data source, versions, generation time and seconds).
    """

    title: str
    sections: list[Section]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def figures(self) -> list[Figure]:
        """Every figure, in order."""
        return [b.content for s in self.sections for b in s.blocks if b.kind == "figure"]

    @property
    def warnings(self) -> list[str]:
        """Texts of the warning boxes (sections that could not be produced)."""
        return [b.content for s in self.sections for b in s.blocks if b.kind == "warning"]

    def section(self, anchor: str) -> Section:
        """Return the section with this anchor."""
        for s in self.sections:
            if s.anchor == anchor:
                return s
        raise KeyError(anchor)

    # ------------------------------------------------------------------ HTML
    def to_html(self) -> str:
        """Render the report as one self-contained HTML document."""
        out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
               f"<title>{_esc(self.title)}</title>", f"<style>{_CSS}</style>", "</head>",
               "<body>", f"<h1>{_esc(self.title)}</h1>"]
        out.append('<p class="meta">' + _esc(self._meta_line()) + "</p>")
        out.append('<nav><ol>' + "".join(
            f'<li><a href="#{s.anchor}">{_esc(s.title)}</a></li>' for s in self.sections)
            + "</ol></nav>")
        for s in self.sections:
            out.append(f'<section id="{s.anchor}"><h2>{_esc(s.title)}</h2>')
            for b in s.blocks:
                out.append(_block_html(b))
            out.append("</section>")
        out += ["</body>", "</html>"]
        return "\n".join(out) + "\n"

    # ------------------------------------------------------------------ Markdown
    def to_markdown(self, *, image_dir: str | None = None) -> str:
        """Render the report as Markdown.

        Parameters
        ----------
        image_dir : str, optional
            Relative folder of the image files (``image_dir/<figure name>.png``). Without
            it, images are embedded as ``data:`` URIs.
        """
        out = [f"# {self.title}", "", self._meta_line(), "", "## Contents", ""]
        out += [f"{i}. [{s.title}](#{s.anchor})" for i, s in enumerate(self.sections, 1)]
        for s in self.sections:
            out += ["", f'<a id="{s.anchor}"></a>', "", f"## {s.title}", ""]
            for b in s.blocks:
                if b.kind == "text":
                    out += [b.content, ""]
                elif b.kind == "code":
                    out += ["```", b.content.rstrip("\n"), "```", ""]
                elif b.kind == "warning":
                    out += [f"> **Warning:** {b.content}", ""]
                elif b.kind == "table":
                    if b.caption:
                        out += [f"*{b.caption}*", ""]
                    out += [_markdown_table(b.content), ""]
                elif b.kind == "figure":
                    fig = b.content
                    src = f"{image_dir}/{fig.name}.png" if image_dir else fig.data_uri()
                    out += [f"![{fig.title}]({src})", ""]
                    if fig.caption:
                        out += [f"*{fig.title}.* {fig.caption}", ""]
        return "\n".join(out).rstrip() + "\n"

    def _meta_line(self) -> str:
        m = self.meta
        return (f"spec {m.get('spec')} ({m.get('kind')}, config id {m.get('spec_id')}); "
                f"data {m.get('data_source')}; seed {m.get('seed')}; generated "
                f"{m.get('generated')} by bayescale {m.get('bayescale_version')} in "
                f"{m.get('seconds', float('nan')):.1f} s")

    # ------------------------------------------------------------------ files
    def write(self, path: str | os.PathLike, *, markdown: bool = True) -> dict[str, Path]:
        """Write the HTML report and (optionally) its Markdown twin, atomically.

        Parameters
        ----------
        path : path
            The HTML file (``.html`` is appended if missing).
        markdown : bool
            Also write ``<stem>.md`` beside it, with its images as PNG files in
            ``<stem>_files/``.

        Returns
        -------
        dict
            ``html``, and with ``markdown`` also ``markdown`` and ``images`` paths.
        """
        path = Path(path)
        if path.suffix.lower() not in (".html", ".htm"):
            path = path.with_name(path.name + ".html")
        if path.exists() and path.is_dir():
            raise RunDirError(f"{path}: is a directory; give the report's file name")
        path.parent.mkdir(parents=True, exist_ok=True)
        written = {}
        if markdown:
            images = path.with_name(f"{path.stem}_files")
            with atomic_directory(images) as tmp:
                for fig in self.figures:
                    (tmp / f"{fig.name}.png").write_bytes(fig.png)
            md = path.with_suffix(".md")
            write_text_atomic(md, self.to_markdown(image_dir=images.name))
            written.update(markdown=md, images=images)
        write_text_atomic(path, self.to_html())
        written["html"] = path
        return {"html": written.pop("html"), **written}


_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1150px;
margin:1.5em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #345;padding-bottom:.2em}
h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ccc}
.meta{color:#555;font-size:.9em}
nav ol{columns:2;font-size:.92em}
pre{background:#f6f8fa;border:1px solid #ddd;padding:.7em;overflow-x:auto;font-size:.8em}
table{border-collapse:collapse;font-size:.8em;margin:.5em 0 1em}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#eef2f5}
td:first-child,th:first-child{text-align:left}
.tablewrap{max-height:520px;overflow:auto;display:inline-block;max-width:100%}
figure{margin:1em 0}
figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#444}
.warning{background:#fff4e5;border-left:4px solid #e69500;padding:.5em .8em}
.pass{color:#fff;background:#2a8a3e;padding:0 .4em;border-radius:3px}
.fail{color:#fff;background:#c0392b;padding:0 .4em;border-radius:3px}
.caption{font-style:italic;font-size:.85em;margin-bottom:.2em}
"""


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _fmt(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        v = float(value)
        if np.isnan(v):
            return ""
        if np.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.4g}"
    return str(value)


def _block_html(b: Block) -> str:
    if b.kind == "text":
        return f"<p>{_esc(b.content)}</p>"
    if b.kind == "code":
        return f"<pre>{_esc(b.content)}</pre>"
    if b.kind == "warning":
        return f'<div class="warning"><strong>Warning:</strong> {_esc(b.content)}</div>'
    if b.kind == "table":
        frame: pd.DataFrame = b.content
        head = "".join(f"<th>{_esc(c)}</th>" for c in frame.columns)
        body = []
        for row in frame.itertuples(index=False):
            cells = []
            for v in row:
                text = _fmt(v)
                if text in ("PASS", "FAIL"):
                    cells.append(f'<td><span class="{text.lower()}">{text}</span></td>')
                else:
                    cells.append(f"<td>{_esc(text)}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        cap = f'<div class="caption">{_esc(b.caption)}</div>' if b.caption else ""
        return (f'{cap}<div class="tablewrap"><table><thead><tr>{head}</tr></thead><tbody>'
                + "".join(body) + "</tbody></table></div>")
    if b.kind == "figure":
        fig: Figure = b.content
        return (f'<figure id="fig-{fig.name}"><img src="{fig.data_uri()}" alt="{_esc(fig.title)}">'
                f"<figcaption><strong>{_esc(fig.title)}.</strong> {_esc(fig.caption)}"
                "</figcaption></figure>")
    raise ValueError(f"unknown block kind {b.kind}")


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(v):
        return _fmt(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in frame.columns) + " |",
             "|" + "|".join("---" for _ in frame.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def render_figure(fig, *, name: str, title: str, caption: str = "") -> Figure:
    """Render a matplotlib figure to PNG, record its labels, and close it."""
    import matplotlib.pyplot as plt

    suptitle = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) else ""
    fig_legend = bool(fig.legends)
    axes = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        handles, _ = ax.get_legend_handles_labels()
        axes.append({"title": ax.get_title(), "xlabel": ax.get_xlabel(),
                     "ylabel": ax.get_ylabel(), "n_series": len(handles),
                     "legend": ax.get_legend() is not None or fig_legend,
                     "suptitle": suptitle})
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return Figure(name=name, title=title, png=buf.getvalue(), caption=caption, axes=axes)


# ---------------------------------------------------------------------- the report
def _load(run) -> tuple[Posterior, Path | None]:
    if isinstance(run, Posterior):
        return run, None
    from bayescale.fitting import load_run

    return load_run(run), Path(run)


def _read_backtest(backtest_dir) -> tuple[pd.DataFrame, dict]:
    path = Path(backtest_dir)
    if not path.is_dir():
        raise RunDirError(f"{path}: no such backtest directory (expected predictions.csv "
                          "and metrics.json written by a backtest)")
    pred_path = path / "predictions.csv"
    if not pred_path.exists():
        raise RunDirError(f"{path}: no predictions.csv in the backtest directory")
    try:
        predictions = pd.read_csv(pred_path)
    except (ValueError, pd.errors.ParserError) as exc:
        raise RunDirError(f"{pred_path}: cannot read ({exc})") from None
    if "observed" not in predictions or not any(c.startswith("q0.") for c in predictions):
        raise RunDirError(f"{pred_path}: needs an 'observed' column and predictive quantile "
                          "columns q0.025 ... q0.975")
    metrics = {}
    if (path / "metrics.json").exists():
        try:
            metrics = json.loads((path / "metrics.json").read_text())
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{path / 'metrics.json'}: not JSON ({exc})") from None
    return predictions, metrics


def build_report(run_dir_or_posterior, *, backtest_dir=None, seed: int | None = None
                 ) -> Report:
    """Build the report of a fitted run.

    Parameters
    ----------
    run_dir_or_posterior : path or Posterior
        A run directory written by ``bayescale fit`` (or its ``posterior.nc``), or a
        Posterior.
    backtest_dir : path, optional
        A backtest directory with ``predictions.csv`` (``observed`` and quantile columns
        ``q0.025 ... q0.975``) and optionally ``metrics.json``: adds the calibration
        section and the error table.
    seed : int, optional
        Seed of prior and predictive draws (default: the fit's seed).

    Returns
    -------
    Report
        Call :meth:`Report.write` to save it.

    Raises
    ------
    RunDirError
        If the run or backtest directory is missing or unreadable.
    """
    start = time.perf_counter()
    posterior, run_dir = _load(run_dir_or_posterior)
    backtest = _read_backtest(backtest_dir) if backtest_dir is not None else None
    spec = posterior.spec
    ctx = _Context(posterior=posterior, seed=posterior.seed if seed is None else seed)
    builders = [
        ("Overview", "overview", _overview),
        ("Model specification", "spec", _spec_section),
        ("Data", "data", _data_section),
        ("Convergence diagnostics", "diagnostics", _diagnostics_section),
        ("Parameters", "parameters", _parameters_section),
        ("Prior against posterior", "prior-posterior", _prior_section),
        ("Posterior predictive check", "ppc", _ppc_section),
        ("Extrapolation", "extrapolation", _extrapolation_section),
    ]
    if spec.kind == "loss-law" and _has_nd_law(posterior):
        builders.append(("Compute-optimal allocation", "allocation", _allocation_section))
    if len(posterior.families) > 1:
        builders.append(("Family efficiency", "efficiency", _efficiency_section))
    if backtest is not None:
        builders.append(("Backtest calibration and errors", "backtest",
                         lambda s, c: _backtest_section(s, c, backtest, backtest_dir)))
    sections = []
    for title, anchor, fn in builders:
        section = Section(title, anchor)
        t0 = time.perf_counter()
        try:
            fn(section, ctx)
        except BayescaleError as exc:
            section.warning(f"this section could not be produced: {exc}")
        except Exception as exc:  # a report keeps its other sections
            log.exception("report section %s failed", anchor)
            section.warning(f"this section could not be produced ({type(exc).__name__}: "
                            f"{exc})")
        log.info("report section %s: %.1f s", anchor, time.perf_counter() - t0)
        sections.append(section)
    versions = posterior.versions
    meta = {
        "spec": spec.name, "kind": spec.kind, "spec_id": spec.config_id,
        "data_source": posterior.tree.attrs.get("data_source", "?"),
        "seed": posterior.seed, "run_dir": str(run_dir) if run_dir else None,
        "backtest_dir": str(backtest_dir) if backtest_dir else None,
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "bayescale_version": versions.get("bayescale", "?"),
        "seconds": time.perf_counter() - start,
    }
    return Report(title=f"bayescale report: {spec.name}", sections=sections, meta=meta)


def write_report(run_dir_or_posterior, out, *, backtest_dir=None, markdown: bool = True
                 ) -> dict[str, Path]:
    """Build a report and write it (see :meth:`Report.write`)."""
    report = build_report(run_dir_or_posterior, backtest_dir=backtest_dir)
    return report.write(out, markdown=markdown)


@dataclass
class _Context:
    posterior: Posterior
    seed: int
    cache: dict[str, Any] = field(default_factory=dict)


def _has_nd_law(posterior) -> bool:
    from bayescale.kinds import loss_law

    return {t.variable for t in loss_law.terms(posterior.spec)} == {"params", "tokens"}


# ---------------------------------------------------------------------- sections
def _overview(s: Section, c: _Context) -> None:
    p = c.posterior
    spec = p.spec
    diag = p.diagnostics
    s.text(f"{spec.description}")
    rows = [("spec", spec.name), ("kind", spec.kind), ("config id", spec.config_id),
            ("data", p.tree.attrs.get("data_source", "?")),
            ("rows used", len(p.fit_table)), ("rows excluded", len(p.excluded_table)),
            ("families", len(p.families)), ("seed", p.seed),
            ("sampler", f"{diag.sampler}, {diag.chains} chains x {diag.draws} draws "
                        f"(+{diag.tune} tune)"),
            ("convergence", "PASS" if diag.passed else "FAIL")]
    s.table(pd.DataFrame(rows, columns=["item", "value"]))
    versions = p.versions
    s.text("Package versions at fit time: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if not diag.passed:
        s.warning("the fit failed convergence checks: " + "; ".join(diag.failures)
                  + ". Intervals below may be unreliable.")


def _spec_section(s: Section, c: _Context) -> None:
    spec = c.posterior.spec
    s.text(f"The spec as fitted (source {spec.path}); the sampler settings actually used are "
           "in the diagnostics section. Every prior is justified in the comments.")
    s.code(spec.source or json.dumps(json.loads(c.posterior.tree.attrs["spec_json"]),
                                      indent=2))


def _data_section(s: Section, c: _Context) -> None:
    p = c.posterior
    table = p.fit_table
    s.text(f"{len(table)} rows used from {p.tree.attrs.get('data_source', '?')}; "
           f"{len(p.excluded_table)} rows excluded before fitting.")
    if p.spec.kind == "skills":
        g = table.groupby("family")
        frame = pd.DataFrame({
            "models": g["model"].nunique(), "benchmarks": g["benchmark"].nunique(),
            "scores": g["score"].count(),
            "min params": g["params"].min().astype(float),
            "max params": g["params"].max().astype(float),
            "max tokens": g["tokens"].max().astype(float),
        }).reset_index()
        s.table(frame, caption="Training data per family (params in parameters, tokens "
                               "in training tokens)")
        bench = table.groupby("benchmark")["score"].agg(["count", "min", "median", "max"])
        s.table(bench.reset_index().rename(columns={"count": "scores"}),
                caption="Scores per benchmark (accuracy)")
    else:
        flops = table["flops"] if "flops" in table else 6 * table["params"] * table["tokens"]
        g = table.assign(flops=flops).groupby("family")
        frame = pd.DataFrame({
            "runs": g.size(), "min params": g["params"].min(), "max params": g["params"].max(),
            "min tokens": g["tokens"].min(), "max tokens": g["tokens"].max(),
            "max FLOPs": g["flops"].max(), "min loss": g["loss"].min(),
            "max loss": g["loss"].max(),
        }).reset_index()
        s.table(frame, caption="Training runs per family (parameters, tokens, FLOPs; loss "
                               "in nats per token)")
    ex = p.excluded_table
    if len(ex):
        reasons = ex["reason"].value_counts().rename_axis("reason").reset_index(name="rows")
        s.table(reasons, caption="Excluded rows by reason")
        shown = ex.head(50)
        s.table(shown, caption=f"Excluded rows ({len(shown)} of {len(ex)} shown)")
    else:
        s.text("No rows were excluded.")


def _diagnostics_section(s: Section, c: _Context) -> None:
    from bayescale import plots
    from bayescale.sample import MAX_R_HAT, MIN_BFMI, MIN_ESS

    d = c.posterior.diagnostics
    worst = d.worst or {}

    def status(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    rows = [
        ("max r-hat", d.max_r_hat, f"<= {MAX_R_HAT}",
         status(np.isfinite(d.max_r_hat) and d.max_r_hat <= MAX_R_HAT), worst.get("r_hat", "")),
        ("min bulk ESS", d.min_ess_bulk, f">= {MIN_ESS}",
         status(np.isfinite(d.min_ess_bulk) and d.min_ess_bulk >= MIN_ESS),
         worst.get("ess_bulk", "")),
        ("min tail ESS", d.min_ess_tail, f">= {MIN_ESS}",
         status(np.isfinite(d.min_ess_tail) and d.min_ess_tail >= MIN_ESS),
         worst.get("ess_tail", "")),
        ("divergences", d.divergences, "0", status(d.divergences == 0), ""),
        ("min BFMI", d.min_bfmi, f">= {MIN_BFMI}",
         status(not np.isfinite(d.min_bfmi) or d.min_bfmi >= MIN_BFMI), ""),
    ]
    s.table(pd.DataFrame(rows, columns=["check", "value", "threshold", "status", "worst at"]))
    s.text(d.describe())
    fig, _ = plots.plot_energy(posterior=c.posterior)
    s.figure(render_figure(fig, name="energy", title="Energy plot",
                           caption="Marginal energy and energy transitions of NUTS; similar "
                                   "widths (BFMI near 1) mean the sampler explores the "
                                   "posterior's energy levels efficiently."))
    fig, _ = plots.plot_rank(posterior=c.posterior)
    s.figure(render_figure(fig, name="rank", title="Rank plots",
                           caption="Rank histograms of each chain; flat, overlapping "
                                   "histograms indicate well-mixed chains."))


def _parameters_section(s: Section, c: _Context) -> None:
    summary = c.posterior.summary(ci_prob=CI_PROB)
    limit = 80
    s.text(f"Posterior mean, sd, median and central {CI_PROB:.0%} interval of each "
           "parameter, with its r-hat and effective sample sizes.")
    shown = summary.head(limit)
    cap = "" if len(summary) <= limit else f"first {limit} of {len(summary)} rows; the full " \
        "table is summary.csv of the run directory"
    s.table(shown, caption=cap)


def _prior_section(s: Section, c: _Context) -> None:
    from bayescale import plots

    prior = plots.sample_prior(c.posterior, seed=c.seed)
    fig, _ = plots.plot_prior_posterior(posterior=c.posterior, prior=prior)
    s.figure(render_figure(fig, name="prior_posterior", title="Prior against posterior",
                           caption="Prior draws of the model rebuilt from the spec, against "
                                   "the posterior; positive parameters as log10 values. A "
                                   "posterior that fills its prior was not learnt from the "
                                   "data."))


def _ppc_section(s: Section, c: _Context) -> None:
    from bayescale import plots

    observed, draws = plots.in_sample_predictive(c.posterior, seed=c.seed)
    fig, _ = plots.plot_ppc(posterior=c.posterior, observed=observed, draws=draws)
    what = "score" if c.posterior.spec.kind == "skills" else "final loss"
    s.figure(render_figure(fig, name="ppc", title="Posterior predictive check",
                           caption=f"Each training {what} against the median and 90% "
                                   "interval of its posterior predictive distribution "
                                   "(in-sample; about 90% should fall inside)."))


def _extrapolation_section(s: Section, c: _Context) -> None:
    from bayescale import plots

    p = c.posterior
    if p.spec.kind == "skills":
        fig, _ = plots.plot_skill_extrapolation(posterior=p, seed=c.seed)
        s.figure(render_figure(
            fig, name="extrapolation", title="Accuracy against compute",
            caption="Posterior of the mean accuracy of a new base model of each family "
                    "(median, 50% and 90% bands), N and D grown at the family's median "
                    "tokens per parameter; points are the training scores. Families with "
                    "the most models are shown."))
        return
    fig, _ = plots.plot_loss_extrapolation(posterior=p)
    s.figure(render_figure(
        fig, name="extrapolation", title="Loss extrapolation",
        caption="Median and 50%/90% bands of the law's mean loss; for a law in N and D, "
                "along each family's compute-optimal frontier, to 100x the largest "
                "training run."))


def _allocation_section(s: Section, c: _Context) -> None:
    from bayescale import plots
    from bayescale.prediction import optimal_allocation

    p = c.posterior
    fig, _ = plots.plot_optimal_allocation(posterior=p)
    s.figure(render_figure(
        fig, name="allocation", title="Compute-optimal tokens per parameter",
        caption="D*/N* minimising the law's loss at fixed C = 6ND (Hoffmann et al. eq. 4), "
                "median and 50%/90% bands."))
    table = p.fit_table
    c_max = float(table["flops"].max() if "flops" in table
                  else (6 * table["params"] * table["tokens"]).max())
    budgets = [c_max, c_max * 10, c_max * 100]
    families = [None] if len(p.families) == 1 else p.families
    frames = [optimal_allocation(p, budgets, family=f, ci_prob=CI_PROB) for f in families]
    frame = pd.concat(frames, ignore_index=True)
    wide = frame.pivot_table(index=["family", "flops"], columns="quantity",
                             values=["median", "lower", "upper"])
    rows = []
    for (fam, flops), r in wide.iterrows():
        row = {"family": fam, "C (FLOPs)": flops}
        for q, label in (("params", "N* (parameters)"), ("tokens", "D* (tokens)"),
                         ("tokens_per_param", "D*/N*"), ("loss", "loss (nats)")):
            row[label] = r[("median", q)]
            row[f"{label} {CI_PROB:.0%} interval"] = \
                f"{_fmt(r[('lower', q)])} to {_fmt(r[('upper', q)])}"
        rows.append(row)
    s.table(pd.DataFrame(rows), caption=f"Compute-optimal allocation at 1x, 10x and 100x the "
                                        f"largest training run (median and {CI_PROB:.0%} "
                                        "interval)")


def _efficiency_section(s: Section, c: _Context) -> None:
    from bayescale import compare, plots

    p = c.posterior
    table = compare.family_efficiency(p, ci_prob=CI_PROB)
    ref, at = table["reference"].iloc[0], table["at"].iloc[0]
    if p.spec.kind == "skills":
        s.text(
            f"Effective-compute multiplier of each family relative to {ref}, per skill, at "
            f"C = {at:.3g} FLOPs: m = exp((theta_f(C) - theta_ref(C)) / s_ref(C)), where "
            "theta is the family's skill for a base model on the common path N, D grown at "
            "the training models' median tokens per parameter, and s_ref the reference's "
            "slope of that skill per unit log compute. With shared slopes this is "
            "exp(delta intercept / slope): how much more compute the reference would need "
            "to reach the family's skill. m > 1: more efficient than the reference.")
    elif table["axis"].iloc[0] == "flops":
        s.text(
            f"Effective-compute multiplier of each family relative to {ref} at C = {at:.3g} "
            "FLOPs (the largest training run): m = C_ref / C, where the reference on its "
            "compute-optimal frontier needs C_ref to reach the loss the family reaches on "
            "its frontier with C (inf if the reference's irreducible loss is above it). "
            "m > 1: more efficient than the reference. Losses must be measured on the same "
            "evaluation data for this to compare families rather than data sets.")
    else:
        axis = table["axis"].iloc[0]
        s.text(
            f"Effective multiplier of each family relative to {ref} on the law's covariate "
            f"({axis}) at {axis} = {at:.3g} (the largest training value): m = x_ref / x, "
            f"where the reference needs x_ref to reach the loss the family reaches with x "
            "(inf if the reference's irreducible loss is above it). m > 1: more efficient "
            "than the reference.")
    weak = table.loc[table["weakly_identified"], "family"].unique()
    if len(weak):
        s.warning("weakly identified (a single model or run): " + ", ".join(weak))
    cols = [c_ for c_ in ["family", "skill", "median", "lower", "upper",
                          "p_more_efficient_than_reference", "n_models",
                          "weakly_identified", "note"] if c_ in table]
    s.table(table[cols], caption=f"Multiplier median and {CI_PROB:.0%} interval")
    fig, _ = plots.plot_efficiency_forest(table=table)
    s.figure(render_figure(fig, name="efficiency", title="Family efficiency (forest plot)",
                           caption="Hollow markers and * are weakly identified families."))
    skill_names = list(dict.fromkeys(table["skill"])) if "skill" in table else [None]
    families = p.families
    if len(families) > 15:
        counts = compare.family_counts(p).sort_values("n_models", ascending=False,
                                                      kind="stable")
        families = sorted(counts["family"].head(15))
        s.text("Probability matrices are shown for the 15 families with the most models; "
               "'bayescale compare-families' gives every pair.")
    short = max(len(f) for f in families) > 16
    for skill in skill_names:
        mat = compare.prob_more_efficient(p, skill=skill).loc[families, families]
        note = ""
        if short:  # long family names: number the columns
            mat.columns = [f"[{i}]" for i in range(1, len(families) + 1)]
            mat.index = [f"[{i}] {f}" for i, f in enumerate(families, 1)]
            note = "; columns are numbered like the rows"
        s.table(mat.rename_axis("family").reset_index(),
                caption="P(row family more efficient than column family)"
                + (f", {skill}" if skill else "") + "; ties count one half, so P(A>B) + "
                "P(B>A) = 1" + note)


def _backtest_section(s: Section, c: _Context, backtest, backtest_dir) -> None:
    from bayescale import plots

    predictions, metrics = backtest
    s.text(f"Held-out predictions from {backtest_dir}: {len(predictions)} observations"
           + (f" of {predictions['model'].nunique()} models" if "model" in predictions
              else "") + ".")
    cov = plots.coverage_table(predictions)
    fig, _ = plots.plot_calibration(predictions=predictions)
    s.figure(render_figure(fig, name="calibration", title="Calibration",
                           caption="Share of held-out observations inside the central "
                                   "predictive interval of each nominal level."))
    fig, _ = plots.plot_pit(predictions=predictions)
    s.figure(render_figure(fig, name="pit", title="PIT histogram",
                           caption="Bins are the intervals between the predictive quantiles "
                                   "stored in predictions.csv; flat at 1 when calibrated."))
    rounded = metrics.get("coverage_rounded") if isinstance(metrics, dict) else None
    if isinstance(rounded, dict) and len(cov):
        cov["coverage (scores rounded to 0.01)"] = [rounded.get(f"{v:g}", np.nan)
                                                    for v in cov["nominal"]]
        expected = metrics.get("coverage_rounded_expected") or {}
        if expected:
            cov["expected if calibrated (rounded, edges included)"] = [
                expected.get(f"{v:g}", np.nan) for v in cov["nominal"]]
    s.table(cov, caption="Coverage of central predictive intervals")
    err = predictions["mean"] - predictions["observed"] if "mean" in predictions else None
    by = "benchmark" if "benchmark" in predictions else ("family" if "family" in predictions
                                                         else None)
    if err is not None:
        scale = 100 if by == "benchmark" else 1
        unit = "accuracy points" if by == "benchmark" else "data units"
        frame = predictions.assign(abs_err=err.abs() * scale, sq_err=(err * scale) ** 2)
        if "q0.05" in frame and "q0.95" in frame:
            frame["inside90"] = (frame["observed"] >= frame["q0.05"]) & \
                (frame["observed"] <= frame["q0.95"])

        def error_row(label, g: pd.DataFrame) -> dict:
            row = {by or "group": label, "n": len(g), f"MAE ({unit})": g["abs_err"].mean(),
                   f"RMSE ({unit})": float(np.sqrt(g["sq_err"].mean()))}
            if "inside90" in g:
                row["coverage 90%"] = g["inside90"].mean()
            if "crps" in g:
                row["CRPS"] = g["crps"].mean()
            return row

        groups = frame.groupby(by) if by else [("all", frame)]
        rows = [error_row(key, g) for key, g in groups] + [error_row("all", frame)]
        s.table(pd.DataFrame(rows), caption="Errors of the posterior predictive mean on "
                                            "held-out observations")
    if metrics:
        flat = [(k, v) for k, v in metrics.items() if isinstance(v, int | float)]
        if flat:
            s.table(pd.DataFrame(flat, columns=["metric", "value"]),
                    caption="metrics.json (scalar entries)")
