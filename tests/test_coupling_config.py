"""Run configuration: defaults, checked keys named in errors, the README reference."""

from pathlib import Path

import dataclasses

import numpy as np
import pytest

from coupling import SessionOptions, child_seed
from coupling.config import SCHEMA, ConfigError, RunConfig, intensity, load_config

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_without_a_file():
    config = load_config(None)
    assert config == RunConfig()
    assert set(config.to_dict()) == set(SCHEMA)
    assert intensity(config) == (80.0, "rmt")
    assert config.session == SessionOptions()


def test_values_from_a_file_override_the_defaults(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[coil]\ncentre = "F3"\n[protocol]\nname = "ctbs"\nintensity = "55 %MSO"\n')
    config = load_config(path)
    assert config.coil.centre == "F3" and config.protocol.name == "ctbs"
    assert intensity(config) == (55.0, "mso")
    assert config.patch.n_neurons == SCHEMA["patch"]["n_neurons"].default


@pytest.mark.parametrize("text, message", [
    ("[coil]\ncentr = [0, 0, 95]\n", r"unknown key coil\.centr"),
    ("[coils]\nname = 'x'\n", r"unknown table \[coils\]"),
    ("[patch]\nn_neurons = 10.5\n", r"patch\.n_neurons: expected an integer"),
    ("[patch]\nradius_mm = -1\n", r"patch\.radius_mm: must be > 0"),
    ("[coil]\ncentre = [0, 95]\n", r"coil\.centre: expected an EEG label"),
    ("[protocol]\nintensity = '80'\n", r"protocol\.intensity"),
    ("[protocol]\nintensity = '120% MSO'\n", r"protocol\.intensity"),
    ("[session]\nprobe_minutes = [-1]\n", r"session\.probe_minutes"),
    ("[plasticity]\ngamma_p_per_s = 0\n", r"plasticity\.gamma_p_per_s: must be > 0"),
    ("[session\n", r"not valid TOML"),
])
def test_bad_keys_and_values_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"bad.toml.*{message}"):
        load_config(path)


def test_plasticity_defaults_are_the_patch_models_and_set_its_rule():
    from coupling import PatchModel, patch_model, scenario_model

    rule = PatchModel().plasticity.stdp
    defaults = RunConfig().plasticity
    assert (defaults.gamma_p_per_s, defaults.gamma_d_per_s) == (rule.gamma_p_per_s, rule.gamma_d_per_s)
    assert patch_model(RunConfig()) == scenario_model(RunConfig().patch.scenario)
    config = RunConfig().with_values({"plasticity.gamma_p_per_s": 2.0, "plasticity.gamma_d_per_s": 0.1,
                                      "patch.scenario": "val66met"})
    model = patch_model(config)
    assert (model.plasticity.stdp.gamma_p_per_s, model.plasticity.stdp.gamma_d_per_s) == (2.0, 0.1)
    assert model.plasticity.bdnf == scenario_model("val66met").plasticity.bdnf
    scale = model.w_aff_nS / model.w_exc_nS
    assert model.afferent_rule().stdp.gamma_p_per_s == pytest.approx(2.0 * scale)


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


def test_configuration_is_frozen_and_with_values_checks_each_key():
    config = RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.patch.n_neurons = 10
    changed = config.with_values({"patch.seed": 7, "session.probe_minutes": [30, 0]})
    assert changed.patch.seed == 7 and changed.session.probe_minutes == (0.0, 30.0)
    assert config.patch.seed == 0
    for values, message in (({"patch.sed": 1}, r"unknown key patch\.sed"),
                            ({"patches.seed": 1}, r"unknown table \[patches\]"),
                            ({"session.dt_ms": 0.3}, r"session\.dt_ms: expected one of"),
                            ({"patch.n_neurons": 10}, r"patch\.n_neurons: must lie in \[20, 100000\]")):
        with pytest.raises(ConfigError, match=f"sweep.toml: {message}"):
            config.with_values(values, "sweep.toml")


def test_toml_text_reads_back_equal(tmp_path):
    config = RunConfig().with_values({"coil.centre": [10.0, -20.5, 90.0], "protocol.name": "sham-ctbs",
                                      "course.homeostasis": True, "output.folder": 'a "b"\\c'})
    path = tmp_path / "config.toml"
    path.write_text(config.to_toml())
    assert load_config(path) == config


def test_session_options_name_the_bad_field():
    with pytest.raises(ValueError, match=r"SessionOptions\.after_s: must be > 0"):
        SessionOptions(after_s=0.0)
    with pytest.raises(ValueError, match=r"SessionOptions\.seed: must lie in"):
        SessionOptions(seed=2 ** 32)


def test_child_seeds_are_those_of_seed_sequence_spawn():
    children = np.random.SeedSequence(12345).spawn(3)
    assert [child_seed(12345, k) for k in range(3)] == [int(c.generate_state(1)[0]) for c in children]
    grandchild = children[1].spawn(2)[1]
    assert child_seed(12345, 1, 1) == int(grandchild.generate_state(1)[0])
    assert len({child_seed(s, k) for s in range(20) for k in range(20)}) == 400
