import pytest

from bayescale.errors import SpecError
from bayescale.spec import available_specs, load_spec, parse_spec, spec_from_text

CHINCHILLA_TOML = (load_spec("chinchilla").source)


def test_every_shipped_spec_loads():
    names = available_specs()
    assert {"chinchilla", "chinchilla-hierarchical", "kaplan-n", "compute"} <= set(names)
    for name in names:
        spec = load_spec(name)
        assert spec.name == name
        assert spec.priors, name


def test_chinchilla_spec_contents():
    spec = load_spec("chinchilla")
    assert spec.kind == "loss-law"
    assert set(spec.priors) == {"E", "A_ref", "B_ref", "alpha", "beta", "sigma", "nu"}
    assert spec.sampler["backend"] == "nutpie"
    assert spec.priors["alpha"].describe() == "LogNormal(mu=-1.05, sigma=0.5)"


def test_load_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(CHINCHILLA_TOML)
    assert load_spec(path).path == str(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: "bogus = 1\n" + t, "unknown top-level key"),
        (lambda t: t.replace('dist = "LogNormal", mu = 0.693', 'dist = "Lognormal", mu = 0.693'),
         "unknown distribution 'Lognormal'"),
        (lambda t: t.replace("mu = -1.05, sigma = 0.5 }\nbeta", "mu = -1.05, sd = 0.5 }\nbeta"),
         "has no parameter(s) sd"),
        (lambda t: t.replace('sigma = { dist = "HalfNormal", sigma = 0.05 }',
                             'sigma = { dist = "HalfNormal", sigma = -0.05 }'), "must be > 0"),
        (lambda t: t.replace('nu = { dist = "Gamma", alpha = 2, beta = 0.1 }', ""),
         "[priors] lacks nu"),
        (lambda t: t.replace("[likelihood]", 'gamma = { dist = "HalfNormal", sigma = 1 }\n'
                                             "[likelihood]"), "does not use: gamma"),
        (lambda t: t.replace('alpha = { dist = "LogNormal", mu = -1.05, sigma = 0.5 }',
                             'alpha = { dist = "Normal", mu = 0.3, sigma = 0.5 }'),
         "positive support"),
        (lambda t: t.replace('variable = "params"', 'variable = "parms"'), "variable must be"),
        (lambda t: t.replace("draws = 1000", "draws = -3"), "draws must be a positive integer"),
        (lambda t: t.replace('backend = "nutpie"', 'backend = "stan"'), "backend must be"),
        (lambda t: t.replace('kind = "loss-law"', 'kind = "loss-lw"'), "unknown model kind"),
        (lambda t: t.replace('group = "none"', 'group = "families"'), "group must be"),
        (lambda t: t.replace("[hierarchy]", "[hierarchy]\npooling = 1"), "unknown [hierarchy]"),
        (lambda t: t + "\n[sampler2]\n", "unknown top-level key"),
        (lambda t: t.replace("E = {", "E = 3\nX = {"), "must be a table"),
    ],
)
def test_bad_spec_is_a_clear_error(tmp_path, edit, message):
    text = edit(CHINCHILLA_TOML)
    assert text != CHINCHILLA_TOML
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_invalid_toml(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(path)


def test_unknown_spec_name_lists_shipped_specs():
    with pytest.raises(SpecError, match="chinchilla-hierarchical"):
        load_spec("no-such-spec")


def test_overrides_revalidate_and_change_id():
    spec = load_spec("chinchilla-hierarchical")
    shared = spec.with_overrides(hierarchy={"exponents": "shared"})
    assert shared.hierarchy["exponents"] == "shared"
    assert shared.config_id != spec.config_id
    assert spec.with_overrides(sampler={"draws": None}).config_id == spec.config_id
    # the pooling scales stay in the spec (unused) so the switches can be flipped back
    assert shared.with_overrides(hierarchy={"exponents": "partial"}).config_id == spec.config_id
    assert shared.with_overrides(hierarchy={"coefficients": "separate"}).hierarchy[
        "coefficients"] == "separate"
    with pytest.raises(SpecError, match="does not use: gamma"):
        spec.with_overrides(priors={"gamma": {"dist": "HalfNormal", "sigma": 1.0}})
    with pytest.raises(SpecError, match="exponents must be one of"):
        spec.with_overrides(hierarchy={"exponents": "pooled"})


def test_spec_round_trips_through_json():
    import json

    spec = load_spec("compute")
    again = parse_spec(json.loads(spec.to_json()), source=spec.source, path=spec.path)
    assert again.config_id == spec.config_id
    assert spec_from_text(spec.source).priors == spec.priors
