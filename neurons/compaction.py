"""Stream compaction on fixed-size buffers: the indices of the True entries of a mask, as
`jnp.nonzero(mask, size=k)` gives them, in integer operations that XLA runs fast on the CPU
(its cumsum and nonzero are slow there). Used for the spikes of a step (neurons.engine) and
the synapse rows a plasticity update has to visit (neurons.calcium)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

_WORD = 32


def inclusive_cumsum(x):
    """Inclusive prefix sum of a 1-D int32 array in exact integer arithmetic: masked sums within
    blocks of 32, recursion over the block totals (XLA's cumsum is slow on CPU)."""
    n = x.shape[0]
    tri = jnp.arange(_WORD)[None, :] <= jnp.arange(_WORD)[:, None]
    if n <= _WORD:
        return jnp.sum(jnp.where(tri[:n, :n], x[None, :], 0), axis=1, dtype=x.dtype)
    blocks = -(-n // _WORD)
    xb = jnp.pad(x, (0, blocks * _WORD - n)).reshape(blocks, _WORD)
    within = jnp.sum(jnp.where(tri[None], xb[:, None, :], 0), axis=2, dtype=x.dtype)
    before = jnp.concatenate([jnp.zeros(1, x.dtype), inclusive_cumsum(within[:, -1])[:-1]])
    return (within + before[:, None]).reshape(-1)[:n]


def compact(mask, k: int):
    """The first k indices of the True entries of mask (n,), ascending, padded with n, and
    the number of True entries (which may exceed k): `jnp.nonzero(mask, size=k)` done with
    32-bit words. The mask is packed into words; word popcounts and their prefix sums locate
    the word of the j-th entry (binary search) and its bit (select by halving)."""
    n = mask.shape[0]
    n_words = -(-n // _WORD)
    bits = jnp.pad(mask, (0, n_words * _WORD - n)).reshape(n_words, _WORD).astype(jnp.uint32)
    words = jnp.sum(bits << jnp.arange(_WORD, dtype=jnp.uint32), axis=1, dtype=jnp.uint32)
    per_word = jax.lax.population_count(words).astype(jnp.int32)
    upto = inclusive_cumsum(per_word)
    count = upto[-1]
    j = jnp.arange(k, dtype=jnp.int32)
    word = jnp.zeros(k, jnp.int32)            # number of words with upto <= j: the word of entry j
    half = 1 << (n_words.bit_length() - 1)
    while half:
        candidate = word + half
        below = upto[jnp.minimum(candidate, n_words) - 1] <= j
        word = jnp.where((candidate <= n_words) & below, candidate, word)
        half >>= 1
    word = jnp.minimum(word, n_words - 1)
    rank = j - (upto[word] - per_word[word])  # entry j is the rank-th set bit of its word
    bits, bit = words[word], jnp.zeros(k, jnp.uint32)
    for width in (16, 8, 4, 2, 1):
        low = jax.lax.population_count((bits >> bit) & jnp.uint32((1 << width) - 1)).astype(jnp.int32)
        skip = rank >= low
        bit = jnp.where(skip, bit + width, bit)
        rank = jnp.where(skip, rank - low, rank)
    ids = word * _WORD + bit.astype(jnp.int32)
    return jnp.where(j < count, ids, n), count
