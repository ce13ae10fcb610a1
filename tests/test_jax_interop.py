"""JAX transformations around jaxneuro that cannot work as called: each a clear error
saying what to do instead."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxneuro as jn


def _soma():
    return jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()])


@pytest.fixture(scope="module")
def batch():
    """A batch of 3 voltage traces from jax.vmap over simulate (t of shape (3, T))."""
    run = lambda a: jn.simulate(_soma(), 6.0, stimuli=[jn.StepCurrent(a, 0.5, 5.0)], save_every=0.05)  # noqa: E731
    return jax.vmap(run)(jnp.array([0.0, 0.3, 0.6]))


def test_spike_times_of_a_vmapped_trace_says_to_vmap_it(batch):
    # It raised "Incompatible shapes for broadcasting: shapes=[(121,), (121, 121)]".
    assert batch.t.shape == (3, 121)
    with pytest.raises(ValueError, match=r"spike_times: this trace has a leading batch axis of size 3 \(trace\.t "
                                         r"has shape \(3, 121\).*jax\.vmap\(jn\.spike_times\)\(trace\)"):
        jn.spike_times(batch)
    with pytest.raises(ValueError, match=r"spike_times: .*batch axis"):
        jn.spike_times(batch, threshold=-20.0)
    # The advice works: one row of spike times per member, as each member alone.
    mapped = jax.vmap(jn.spike_times)(batch)
    alone = jn.spike_times(jax.tree.map(lambda x: x[2], batch))
    np.testing.assert_array_equal(np.asarray(mapped[2]), np.asarray(alone))
    assert np.isinf(mapped[0]).all() and np.isfinite(mapped[2, 0])


@pytest.mark.parametrize("what", ["isi", "spike_count"])
def test_spike_measures_of_a_vmapped_voltage_trace_say_to_vmap_spike_times(batch, what):
    # isi said to pass jn.spike_times(trace), which then failed as above.
    with pytest.raises(ValueError, match=rf"{what}: this trace has a leading batch axis of size 3.*no spike events "
                                         r"of its own.*jax\.vmap\(jn\.spike_times\)\(trace\)"):
        getattr(jn, what)(batch)


def test_trace_losses_of_a_vmapped_trace_say_to_vmap_them(batch):
    # voltage raised a shape mismatch that did not say why.
    target = jnp.zeros_like(batch.v)
    with pytest.raises(ValueError, match=r"voltage: this trace has a leading batch axis of size 3 .*"
                                         r"jnp\.mean\(jax\.vmap\(lambda tr: jn\.losses\.voltage\(tr, \.\.\.\)\)"):
        jn.losses.voltage(batch, target)
    with pytest.raises(ValueError, match=r"summary_statistics: this trace has a leading batch axis of size 3"):
        jn.losses.summary_statistics(batch)
    # The advice works: per member as alone.
    per = jax.vmap(lambda tr, y: jn.losses.voltage(tr, y))(batch, target)
    alone = jn.losses.voltage(jax.tree.map(lambda x: x[1], batch), target[1])
    assert float(per[1]) == pytest.approx(float(alone), rel=1e-12) and float(alone) > 100.0


def test_nested_vmapped_trace_names_its_batch_shape(batch):
    nested = jax.tree.map(lambda x: jnp.stack([x, x]), batch)
    with pytest.raises(ValueError, match=r"batch axis of shape \(2, 3\).*one jax\.vmap per batch axis, 2 here"):
        jn.spike_times(nested)


def test_forward_mode_through_a_diffrax_solve_names_the_adjoint():
    # JAX said only "can't apply forward-mode autodiff (jvp) to a custom_vjp function".
    model = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.Leak()])
    kw = dict(solver=diffrax.Tsit5(), stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6))

    def mean_v(amp, **extra):
        return jnp.mean(jn.simulate(model, 2.0, stimuli=[jn.StepCurrent(amp, 0.5, 1.0)], save_every=0.5,
                                    **kw, **extra).v)

    with pytest.raises(TypeError, match=r"forward-mode differentiation \(jax\.jvp, jax\.jacfwd\).*"
                                        r"needs adjoint=diffrax\.ForwardMode\(\); the adjoint used \(the default, "
                                        r"diffrax\.RecursiveCheckpointAdjoint\(\)\) supports reverse mode") as info:
        jax.jacfwd(mean_v)(0.1)
    assert "custom_vjp" in str(info.value.__cause__)
    forward = jax.jacfwd(lambda a: mean_v(a, adjoint=diffrax.ForwardMode()))(0.1)
    np.testing.assert_allclose(forward, (mean_v(0.1 + 1e-4) - mean_v(0.1 - 1e-4)) / 2e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["dt", "t0"])
def test_a_time_mapped_by_vmap_says_what_to_do_under_vmap(name):
    # The advice was only "call jn.simulate outside your jax.jit", under a vmap.
    model = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.Leak()])
    run = lambda x: jn.simulate(model, 1.0, **{name: x}).v  # noqa: E731
    with pytest.raises(ValueError, match=rf"{name} must be a concrete time in ms .*VmapTracer.*under jax\.vmap "
                                         rf"\(or grad\), {name} cannot be mapped over: simulate each value in a "
                                         r"Python loop, and vmap over what may be traced"):
        jax.vmap(run)(jnp.array([0.025, 0.05]) if name == "dt" else jnp.array([0.0, 0.5]))
