"""Run configuration: defaults, checked keys named in errors, the README reference."""

from pathlib import Path

import pytest

from coupling.config import SCHEMA, ConfigError, intensity, load_config

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_without_a_file():
    config = load_config(None)
    assert set(config) == set(SCHEMA)
    assert intensity(config) == (80.0, "rmt")


def test_values_from_a_file_override_the_defaults(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[coil]\ncentre = "F3"\n[protocol]\nname = "ctbs"\nintensity = "55 %MSO"\n')
    config = load_config(path)
    assert config["coil"]["centre"] == "F3" and config["protocol"]["name"] == "ctbs"
    assert intensity(config) == (55.0, "mso")
    assert config["patch"]["n_neurons"] == SCHEMA["patch"]["n_neurons"].default


@pytest.mark.parametrize("text, message", [
    ("[coil]\ncentr = [0, 0, 95]\n", r"unknown key coil\.centr"),
    ("[coils]\nname = 'x'\n", r"unknown table \[coils\]"),
    ("[patch]\nn_neurons = 10.5\n", r"patch\.n_neurons: expected an integer"),
    ("[patch]\nradius_mm = -1\n", r"patch\.radius_mm: must be > 0"),
    ("[coil]\ncentre = [0, 95]\n", r"coil\.centre: expected an EEG label"),
    ("[protocol]\nintensity = '80'\n", r"protocol\.intensity"),
    ("[protocol]\nintensity = '120% MSO'\n", r"protocol\.intensity"),
    ("[session]\nprobe_minutes = [-1]\n", r"session\.probe_minutes"),
    ("[session\n", r"not valid TOML"),
])
def test_bad_keys_and_values_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"bad.toml.*{message}"):
        load_config(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml"):
        load_config(tmp_path / "nope.toml")


def test_readme_documents_every_key():
    text = README.read_text()
    missing = [f"{t}.{k}" for t, keys in SCHEMA.items() for k in keys if f"`{t}.{k}`" not in text]
    assert not missing


def test_readme_holds_the_reference_table_as_generated():
    from coupling.config import reference_table

    assert reference_table().strip() in README.read_text()
