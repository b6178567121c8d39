"""Reports: self-contained HTML structure, embedded figures, labels, Markdown twin, CLI."""

import base64
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from bayescale import plots
from bayescale.cli import main
from bayescale.errors import RunDirError
from bayescale.report import Block, Report, Section, build_report, render_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Collector(HTMLParser):
    """Collect tags, attributes and section ids of an HTML document."""

    def __init__(self):
        super().__init__()
        self.tags = []
        self.stack = []
        self.errors = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in ("meta", "img", "br", "hr", "link", "input"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


def parse(text):
    parser = _Collector()
    parser.feed(text)
    parser.close()
    return parser


def check_self_contained(text):
    """Every image is an embedded PNG, nothing refers to the network, tags balance."""
    parsed = parse(text)
    assert not parsed.errors, parsed.errors[:3]
    assert not parsed.stack
    assert "http://" not in text and "https://" not in text and "//cdn" not in text
    tags = [t for t, _ in parsed.tags]
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    imgs = [a for t, a in parsed.tags if t == "img"]
    for attrs in imgs:
        src = attrs["src"]
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
        assert attrs.get("alt")
    return parsed, imgs


def check_figure_labels(report):
    for fig in report.figures:
        assert fig.axes, fig.name
        for ax in fig.axes:
            assert ax["title"] or ax["suptitle"], (fig.name, ax)
            assert ax["xlabel"] and ax["ylabel"], (fig.name, ax)
        # a legend wherever an axes holds more than one labelled series
        for ax in fig.axes:
            if ax["n_series"] > 1:
                assert ax["legend"] or any(a["legend"] for a in fig.axes), (fig.name, ax)


def fake_backtest(tmp_path, n=200, seed=0):
    """A calibrated synthetic backtest: observed ~ N(mean, 0.05), normal quantiles."""
    from scipy import stats

    rng = np.random.default_rng(seed)
    mean = rng.uniform(0.2, 0.8, n)
    observed = mean + 0.05 * rng.standard_normal(n)
    frame = pd.DataFrame({"model": [f"m{i // 4}" for i in range(n)],
                          "benchmark": np.tile(["MMLU", "GSM8K", "ARC", "BBH"], n // 4),
                          "observed": observed, "mean": mean})
    for q in (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975):
        frame[f"q{q:g}"] = mean + 0.05 * stats.norm.ppf(q)
    out = tmp_path / "backtest"
    out.mkdir()
    frame.to_csv(out / "predictions.csv", index=False)
    (out / "metrics.json").write_text('{"mae_pp": 4.0, "n_cells": 200}')
    return out, frame


# ---------------------------------------------------------------------- fast
def test_report_html_and_markdown_from_blocks(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4], label="a")
    ax.plot([1, 2], [4, 3], label="b")
    ax.set(title="t", xlabel="x (FLOPs)", ylabel="y (nats)")
    ax.legend()
    figure = render_figure(fig, name="f1", title="A <figure>", caption="c & d")
    s = Section("First", "first", [Block("text", "<b>not bold</b>"), Block("figure", figure),
                                   Block("table", pd.DataFrame({"a": [1.5, np.inf],
                                                                "b": ["PASS", "FAIL"]}))])
    s.warning("careful")
    report = Report("R", [s], meta={"seconds": 1.0})
    text = report.to_html()
    _, imgs = check_self_contained(text)
    assert len(imgs) == 1
    assert "&lt;b&gt;not bold&lt;/b&gt;" in text and 'class="pass"' in text
    paths = report.write(tmp_path / "out" / "r.html")
    assert paths["html"].read_text() == text
    md = paths["markdown"].read_text()
    assert "![A <figure>](r_files/f1.png)" in md
    assert (tmp_path / "out" / "r_files" / "f1.png").read_bytes().startswith(PNG_MAGIC)
    assert "| a | b |" in md and "> **Warning:** careful" in md
    assert not list((tmp_path / "out").glob(".*tmp*"))  # nothing half-written left
    embedded = report.to_markdown()
    assert "](data:image/png;base64," in embedded
    assert report.warnings == ["careful"]


def test_pit_and_coverage_from_quantiles(tmp_path):
    _, frame = fake_backtest(tmp_path, n=4000, seed=3)
    cov = plots.coverage_table(frame)
    assert list(cov["nominal"]) == [0.5, 0.8, 0.9, 0.95]
    assert np.allclose(cov["coverage"], cov["nominal"], atol=0.03)
    edges, density = plots.pit_bins(frame)
    assert edges[0] == 0 and edges[-1] == 1 and len(density) == len(edges) - 1
    assert np.sum(density * np.diff(edges)) == pytest.approx(1.0)
    assert np.allclose(density, 1.0, atol=0.25)
    for fn in (plots.plot_calibration, plots.plot_pit):
        fig, ax = fn(predictions=frame)
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
        assert ax.get_legend() is not None


def test_missing_backtest_and_run_dir(tmp_path):
    with pytest.raises(RunDirError):
        build_report(tmp_path / "nope")
    assert main(["report", str(tmp_path / "nope")]) == 1


# ---------------------------------------------------------------------- fitted (slow)
@pytest.fixture(scope="module")
def chinchilla_cli_report(chinchilla_run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "chinchilla.html"
    assert main(["report", str(chinchilla_run_dir), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def hierarchical_report(hierarchical_posterior, tmp_path_factory):
    backtest, _ = fake_backtest(tmp_path_factory.mktemp("bt"))
    return build_report(hierarchical_posterior, backtest_dir=backtest)


@pytest.mark.slow
def test_chinchilla_report_cli(chinchilla_cli_report):
    text = chinchilla_cli_report.read_text()
    parsed, imgs = check_self_contained(text)
    ids = {a.get("id") for t, a in parsed.tags if t == "section"}
    assert {"overview", "spec", "data", "diagnostics", "parameters", "prior-posterior",
            "ppc", "extrapolation", "allocation"} <= ids
    assert "efficiency" not in ids  # one family
    names = {a["id"] for t, a in parsed.tags if t == "figure"}
    assert {"fig-energy", "fig-rank", "fig-prior_posterior", "fig-ppc",
            "fig-extrapolation", "fig-allocation"} <= names
    assert len(imgs) == len(names)
    assert "Warning:</strong> this section could not" not in text
    assert "[priors]" in text  # the spec TOML
    assert "outlier" in text  # excluded rows and their reason
    md = chinchilla_cli_report.with_suffix(".md")
    md_text = md.read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md_text)
    assert len(images) == len(imgs)
    for rel in images:
        assert (md.parent / rel).read_bytes().startswith(PNG_MAGIC)


@pytest.mark.slow
def test_hierarchical_report_sections_and_labels(hierarchical_report, tmp_path):
    report = hierarchical_report
    failed = [w for w in report.warnings if "could not be produced" in w]
    assert not failed, failed
    anchors = [s.anchor for s in report.sections]
    assert anchors[-2:] == ["efficiency", "backtest"]
    check_figure_labels(report)
    names = {f.name for f in report.figures}
    assert {"efficiency", "calibration", "pit", "allocation"} <= names
    eff = report.section("efficiency")
    tables = [b.content for b in eff.blocks if b.kind == "table"]
    mat = tables[-1].set_index("family")
    assert np.allclose(mat.to_numpy() + mat.to_numpy().T, 1.0)
    text = report.to_html()
    check_self_contained(text)
    assert "MAE (accuracy points)" in text
    paths = report.write(tmp_path / "hier.html")
    assert paths["html"].stat().st_size > 10_000


@pytest.mark.slow
def test_report_time(hierarchical_report):
    assert hierarchical_report.meta["seconds"] < 60  # target 30 s; slack for loaded CI


@pytest.mark.slow
def test_skills_report_structure(skills_mock_posterior):
    """Skills report on prior draws: every section renders, figures labelled, embedded."""
    report = build_report(skills_mock_posterior)
    failed = [w for w in report.warnings if "could not be produced" in w]
    assert not failed, failed
    anchors = [s.anchor for s in report.sections]
    assert "allocation" not in anchors
    assert {"extrapolation", "efficiency", "ppc", "prior-posterior"} <= set(anchors)
    check_figure_labels(report)
    extrap = next(f for f in report.figures if f.name == "extrapolation")
    assert all(ax["ylabel"] == "accuracy" and "FLOPs" in ax["xlabel"] for ax in extrap.axes)
    text = report.to_html()
    _, imgs = check_self_contained(text)
    assert len(imgs) == len(report.figures)
    assert "weakly identified" in text and "falcon" in text
