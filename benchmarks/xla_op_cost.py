"""What one XLA operation costs inside a `lax.scan` step on this machine, the floor under a
step of the spiking engine (each fused operation of a step is launched on its own).

1. A scan of 20,000 steps whose body updates n independent float32 arrays of 133-332 elements
   (different shapes, so XLA cannot fuse them into one operation): time per step / n.
2. The delay ring's clear: a (16, 2, N) ring with one slot cleared by dynamic-update-slice
   and a few events scatter-added per step, against the same step without the clear (XLA
   then copies the ring once a step; the difference is what that copy costs).

    python benchmarks/xla_op_cost.py      # pin it for a one-core figure: taskset -c 1 ...

Process CPU time, best of 3 after compilation; prints one line per case.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

STEPS = 20_000


def best_cpu_s(compiled, *args) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.process_time() - t)
    return best


def operation_cost(n: int) -> float:
    """CPU us per step of a scan body of n independent elementwise updates."""
    init = tuple(jnp.zeros(133 + i) for i in range(n))
    run = jax.jit(lambda c, xs: jax.lax.scan(lambda c, x: (tuple(a * 0.9 + x for a in c), None), c, xs)[0])
    xs = jnp.ones(STEPS)
    return best_cpu_s(run.lower(init, xs).compile(), init, xs) / STEPS * 1e6


def ring_step_cost(n_neurons: int, clear: bool, slots: int = 16) -> float:
    """CPU us per step: optional clear of the step's ring slot, two scatter-adds, one slot read."""
    size = slots * 2 * n_neurons

    def step(carry, x):
        k, ring, syn = carry
        slot = k % slots
        if clear:
            ring = jax.lax.dynamic_update_index_in_dim(ring, jnp.zeros(ring.shape[1:]), slot, 0)
        add = lambda i, f: f.at[(slot * 2 * n_neurons + x[i]) % size].add(1.0)  # noqa: E731
        flat = jax.lax.fori_loop(0, x[0] % 3, add, ring.reshape(-1))
        ring = flat.reshape(ring.shape)
        return (k + 1, ring, 0.9 * syn + ring[(k + 1) % slots]), None

    run = jax.jit(lambda ring, xs: jax.lax.scan(step, (jnp.int32(0), ring, jnp.zeros((2, n_neurons))), xs)[0])
    ring = jnp.zeros((slots, 2, n_neurons))
    xs = jax.random.randint(jax.random.key(0), (STEPS, 8), 2 * n_neurons, size)
    return best_cpu_s(run.lower(ring, xs).compile(), ring, xs) / STEPS * 1e6


def main():
    for n in (10, 50, 100, 200):
        per_step = operation_cost(n)
        print(f"{n} operations: {per_step:.2f} us per step, {per_step / n:.3f} us per operation", flush=True)
    for n_neurons in (500, 5000):
        with_clear, without = ring_step_cost(n_neurons, True), ring_step_cost(n_neurons, False)
        print(f"ring of {n_neurons} neurons: {with_clear:.2f} us per step with the clear (and its copy), "
              f"{without:.2f} without", flush=True)


if __name__ == "__main__":
    main()
