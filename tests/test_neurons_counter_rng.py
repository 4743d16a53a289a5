"""Counter-based random numbers of the step: Threefry-2x32-20 against its published
known-answer vectors and JAX's own threefry, and the uniforms built from it."""

import jax
import jax.extend.random
import jax.numpy as jnp
import numpy as np
import pytest

from neurons.counter_rng import step_uniforms, threefry2x32

U = jnp.uint32


@pytest.mark.parametrize("key, counter, expected", [
    # Random123's known-answer vectors for threefry2x32_20 (Salmon et al. 2011)
    ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
])
def test_threefry_matches_the_known_answer_vectors(key, counter, expected):
    out = threefry2x32(U(key[0]), U(key[1]), U(counter[0]), U(counter[1]))
    assert tuple(int(x) for x in out) == expected


def test_threefry_equals_jax_threefry_on_random_counters():
    rng = np.random.default_rng(4)
    key = rng.integers(0, 2**32, 2, dtype=np.uint64).astype(np.uint32)
    x = rng.integers(0, 2**32, (2, 257), dtype=np.uint64).astype(np.uint32)
    ours = threefry2x32(U(key[0]), U(key[1]), jnp.asarray(x[0]), jnp.asarray(x[1]))
    theirs = jax.extend.random.threefry_2x32(jnp.asarray(key), jnp.asarray(x.reshape(-1)))
    np.testing.assert_array_equal(np.concatenate([np.asarray(o) for o in ours]), np.asarray(theirs))


def test_uniforms_depend_on_key_step_and_index_only_and_lie_in_the_unit_interval():
    key = jax.random.key(7)
    table = np.asarray(step_uniforms(key, jnp.arange(5)[:, None], jnp.arange(100)[None, :]))
    assert table.dtype == np.float32 and table.min() >= 0.0 and table.max() < 1.0
    one = np.asarray(step_uniforms(key, 3, jnp.arange(40, 60)))
    np.testing.assert_array_equal(one, table[3, 40:60])
    assert not np.array_equal(np.asarray(step_uniforms(jax.random.key(8), 3, jnp.arange(40, 60))), one)
    # the float is the top 23 bits of the first output word
    bits, _ = threefry2x32(*(U(k) for k in jax.random.key_data(key)), U(3), U(41))
    assert one[1] == np.float32(int(bits) >> 9) / np.float32(2**23)


def test_uniforms_are_uniform():
    u = step_uniforms(jax.random.key(0), jnp.arange(200)[:, None], jnp.arange(500)[None, :])
    u = np.asarray(u).ravel()
    counts = np.histogram(u, bins=20, range=(0.0, 1.0))[0]
    expected = u.size / 20
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < 43.8  # 0.999 quantile of chi-square with 19 degrees of freedom
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01
