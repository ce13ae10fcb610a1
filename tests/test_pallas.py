"""The fused Pallas backend (interpret mode on the CPU) against the XLA loop, and
spike summaries against crossings found in a full trace."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxneuro as jn
from jaxneuro.solve.summary import SpikeSummary


def _population(n=6, dtype=None):
    g = jnp.linspace(0.08, 0.16, n, dtype=dtype)
    return jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH(gnabar=g)], n=n)


STIM = jn.StepCurrent(jnp.linspace(0.1, 0.3, 6), 2.0, 1e9)


def _run(backend, model=None, **kw):
    model = _population() if model is None else model
    kw.setdefault("record", ("v", "m_hh"))
    return jn.simulate(model, 25.0, dt=0.025, stimuli=[STIM], save_every=0.5, backend=backend, **kw)


def test_pallas_equals_xla_float64():
    # n = 6 is padded to a block of 8 inside the kernel: padding must not leak out.
    a = _run("xla", summary=SpikeSummary(capacity=4))
    b = _run("pallas", summary=SpikeSummary(capacity=4))
    assert b.v.shape == a.v.shape == (51, 6)
    np.testing.assert_allclose(b.v, a.v, rtol=0, atol=1e-9)
    np.testing.assert_allclose(b.m_hh, a.m_hh, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(b.spike_count, a.spike_count)
    np.testing.assert_allclose(b.spikes, a.spikes, rtol=0, atol=1e-9)
    assert a.spike_count.min() >= 1 and a.spike_count.max() >= 2  # the test has spikes in it


def test_pallas_equals_xla_float32():
    with jax.enable_x64(False):
        model = _population(dtype=jnp.float32)
        stim = jn.StepCurrent(jnp.linspace(0.1, 0.3, 6, dtype=jnp.float32), 2.0, 1e9)
        kw = dict(dt=0.025, stimuli=[stim], save_every=0.5, record=("v",))
        a = jn.simulate(model, 25.0, backend="xla", **kw)
        b = jn.simulate(model, 25.0, backend="pallas", **kw)
    assert b.v.dtype == jnp.float32
    # Same arithmetic, possibly fused differently: float32 rounding, amplified near
    # spike upswings (dV/dt ~ 100 mV/ms), stays far below a millivolt.
    assert float(jnp.max(jnp.abs(b.v - a.v))) < 1e-2


def test_summary_matches_crossings_in_full_trace():
    full = jn.simulate(_population(), 25.0, dt=0.025, stimuli=[STIM], record=("v",))
    s = jn.simulate(_population(), 25.0, dt=0.025, stimuli=[STIM], record=(), summary=SpikeSummary(capacity=8),
                    backend="pallas")
    assert s.values == {}
    v, t = np.asarray(full.v), np.asarray(full.t)
    for i in range(6):
        k = np.nonzero((v[:-1, i] < 0.0) & (v[1:, i] >= 0.0))[0]
        expect = t[k] + (0.0 - v[k, i]) / (v[k + 1, i] - v[k, i]) * (t[k + 1] - t[k])
        assert int(s.spike_count[i]) == len(expect)
        np.testing.assert_allclose(np.asarray(s.spikes[i, : len(expect)]), expect, rtol=0, atol=1e-9)
        assert np.all(np.isinf(np.asarray(s.spikes[i, len(expect):])))


def test_pallas_gradient_equals_xla():
    def loss(g, backend):
        m = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH(gnabar=g)], n=4)
        tr = jn.simulate(m, 10.0, dt=0.025, stimuli=[jn.StepCurrent(0.2, 1.0, 1e9)], save_every=0.5, backend=backend)
        return jnp.mean(tr.v)

    g = jnp.array([0.09, 0.11, 0.12, 0.15])
    value_xla, ga = jax.value_and_grad(loss)(g, "xla")  # (one program for both)
    gb = jax.grad(loss)(g, "pallas")
    assert np.all(np.abs(ga) > 0)
    np.testing.assert_allclose(gb, ga, rtol=1e-9, atol=0)
    # Forward mode too (the kernel's values, the XLA loop's tangents): the Jacobian
    # (jax.jacfwd's unit tangents) and one mixed direction, in one vmapped JVP.
    direction = jnp.array([1.0, -2.0, 0.5, 3.0])
    tangents = jnp.concatenate([jnp.eye(4), direction[None]])
    value, slopes = jax.vmap(lambda d: jax.jvp(lambda x: loss(x, "pallas"), (g,), (d,)),
                             out_axes=(None, 0))(tangents)
    np.testing.assert_allclose(slopes[:4], ga, rtol=1e-9, atol=0)
    np.testing.assert_allclose(value, value_xla, rtol=1e-12)
    np.testing.assert_allclose(slopes[4], jnp.dot(ga, direction), rtol=1e-9)


def test_backend_validation():
    cable = jn.Cable(length=100.0, diam=1.0, nseg=3, channels=[jn.channels.HH()])
    with pytest.raises(ValueError, match="independent compartments"):
        jn.simulate(cable, 1.0, backend="pallas")
    with pytest.raises(ValueError, match="backend expects one of"):
        jn.simulate(_population(), 1.0, backend="cuda")
    # With adaptive steps or an adjoint too (before: any name ran, in one diffrax loop).
    import diffrax

    adaptive = dict(stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6), solver=diffrax.Tsit5())
    for kw in (adaptive, dict(adjoint=diffrax.DirectAdjoint())):
        with pytest.raises(ValueError, match="backend expects one of"):
            jn.simulate(_population(), 1.0, backend="cuda", **kw)
        for backend in ("pallas", "sharded"):
            with pytest.raises(ValueError, match=rf"backend='{backend}' runs the constant-step loop; .*'auto' or 'xla'"):
                jn.simulate(_population(), 1.0, backend=backend, **kw)
        assert jn.simulate(_population(), 1.0, backend="xla", **kw).v.shape[-1] == 6
    with pytest.raises(ValueError, match="summary"):
        jn.simulate(jn.LIF(n=2), 1.0, summary=SpikeSummary())
    # auto on the CPU: the XLA loop (the cable runs, the population too).
    assert jn.simulate(cable, 1.0).v.shape == (41, 3)
    tabled = jn.Compartment(length=20.0, diam=20.0, n=4, channels=[jn.channels.HH(use_table=True)])
    with pytest.raises(ValueError, match="use_table=True"):
        jn.simulate(tabled, 1.0, backend="pallas")
    assert jn.simulate(tabled, 1.0).v.shape == (41, 4)
    # A targeted stimulus with per-target amplitudes at a repeated index (its currents
    # add there) cannot become per-neuron parameters (at distinct ones it does:
    # test_per_place_parameters_at_distinct_indices_run_split).
    per_target = jn.StepCurrent(jnp.array([0.1, 0.2]), 0.0, 1e9, target=(1, 1))
    with pytest.raises(ValueError, match="per-target parameters, e.g. amplitudes or delays"):
        jn.simulate(_population(), 1.0, stimuli=[per_target], backend="pallas")
    assert jn.simulate(_population(), 1.0, stimuli=[per_target]).v.shape == (41, 6)
    # A recorded current (samples looked up by time), even of as many samples as
    # neurons: not a per-neuron array; "auto" on a GPU falls back to the XLA loop.
    from jaxneuro.backends import pallas as P

    samples = jn.DataCurrent(values=jnp.linspace(0.0, 0.3, 6), dt=0.5)
    with pytest.raises(ValueError, match=r"recorded waveform's samples \(stimuli\[0\]\.values: DataCurrent's 6 "
                                         r"values, looked up by time\)"):
        jn.simulate(_population(), 1.0, stimuli=[samples], backend="pallas")
    assert "stimuli[0].values" in P.unsupported(_population(), jn.StaggeredEuler(), None, [samples])
    # One value too many for a per-neuron parameter: said so (it read as the backend's
    # limit); simulate gives the stimulus's own error first (test_a_misshapen_stimulus_...).
    assert "stimuli[0].amp has shape (7,): if it is meant per neuron, the population has 6" in P.unsupported(
        _population(), jn.StaggeredEuler(), None, [jn.StepCurrent(jnp.ones(7), 0.0, 1.0)])
    # A parameter of one value in a population of six is named (before: "e.g. a
    # DataCurrent's samples"); so are per-target delays and the reason noise stays whole.
    one = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH(gnabar=jnp.array([0.12]))], n=6)
    with pytest.raises(ValueError, match=r"model\.channels\[0\]\.gnabar has shape \(1,\): if it is meant per neuron"):
        jn.simulate(one, 1.0, backend="pallas")
    delays = jn.StepCurrent(0.1, jnp.array([0.5, 1.0]), 1e9, target=(3, 3))
    with pytest.raises(ValueError, match="per-target parameters, e.g. amplitudes or delays"):
        jn.simulate(_population(), 1.0, stimuli=[delays], backend="pallas")
    with pytest.raises(ValueError, match=r"NoiseCurrent .*\(it draws its random numbers per neuron"):
        jn.simulate(_population(), 1.0, stimuli=[jn.NoiseCurrent(0.1, 0.1)], backend="pallas")


@pytest.mark.parametrize("n, samples", [(8, 41), (41, 41)])
def test_a_recorded_waveform_is_refused_as_samples_not_as_a_per_neuron_parameter(n, samples):
    # One waveform for all neurons (values of shape (T,)) was refused as a per-neuron
    # parameter of the wrong length ("if it is meant per neuron, the population has
    # 8"; "per-neuron parameters (shape (41,)) ... not stimuli[0].values of shape
    # (41,)" where T == n), with only backend='xla' advised, though 'sharded' runs it.
    pop = jn.Compartment(length=20.0, diam=20.0, n=n, channels=[jn.channels.HH()])
    stimuli = [jn.DataCurrent(jnp.linspace(0.0, 0.3, samples), 0.25)]
    message = (rf"^backend='pallas': does not take a recorded waveform's samples \(stimuli\[0\]\.values: "
               rf"DataCurrent's {samples} values, looked up by time\) in the GPU kernel; use backend='xla' or "
               r"'sharded', which run it$")
    with pytest.raises(ValueError, match=message):
        jn.simulate(pop, 1.0, stimuli=stimuli, backend="pallas")
    targeted = [jn.DataCurrent(jnp.linspace(0.0, 0.3, samples), 0.25, target=[0, 3])]
    with pytest.raises(ValueError, match="recorded waveform's samples"):
        jn.simulate(pop, 1.0, stimuli=targeted, backend="pallas")
    ref = jn.simulate(pop, 1.0, stimuli=stimuli, backend="xla")
    np.testing.assert_allclose(jn.simulate(pop, 1.0, stimuli=stimuli, backend="sharded").v, ref.v, rtol=0, atol=1e-9)


def test_a_misshapen_stimulus_gets_its_own_error_on_every_backend():
    # backend='pallas' refused a wrong-length amplitude as a per-neuron parameter and
    # advised backend='xla', which refuses it too: every backend now gives the
    # stimulus's own error (the one the XLA loop gives).
    import diffrax

    pop = jn.Compartment(length=20.0, diam=20.0, n=6, channels=[jn.channels.HH()])
    stimuli = [jn.StepCurrent(jnp.full(4, 0.3), 1.0, 1e9)]
    message = (r"^stimuli\[0\]: stimulus current of shape \(4,\) does not fit target=None, which names "
               r"compartments of shape \(6,\).*\(StepCurrent's parameters: amp \(4,\), delay \(\), dur \(\)\)$")
    for backend in ("pallas", "sharded", "xla", "auto"):
        with pytest.raises(ValueError, match=message):
            jn.simulate(pop, 1.0, stimuli=stimuli, backend=backend)
    adaptive = dict(solver=diffrax.Tsit5(), stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6))
    for backend in ("pallas", "xla"):
        with pytest.raises(ValueError, match=message):
            jn.simulate(pop, 1.0, stimuli=stimuli, backend=backend, **adaptive)
    # Refusals that are the backend's own stay so (another backend does run them).
    with pytest.raises(ValueError, match=r"backend='pallas' runs the constant-step loop"):
        jn.simulate(pop, 1.0, stimuli=[jn.StepCurrent(0.3, 1.0, 1e9)], backend="pallas", **adaptive)
    # ... and name every backend that does ('sharded' runs rate tables and (1,) parameters).
    for channel in (jn.channels.HH(use_table=True), jn.channels.HH(gnabar=jnp.array([0.12]))):
        with pytest.raises(ValueError, match=r"^backend='pallas': .*; use backend='xla' or 'sharded'$"):
            jn.simulate(jn.Compartment(length=20.0, diam=20.0, n=6, channels=[channel]), 1.0,
                        stimuli=[jn.StepCurrent(jnp.full(6, 0.3), 1.0, 1e9)], backend="pallas")


@pytest.mark.parametrize("backend", ["pallas", "sharded"])
def test_per_place_parameters_at_distinct_indices_run_split(backend):
    """The README's one stimulus with ``target=indices`` and a value per place was
    refused by the split backends ("per-target parameters"), so ``auto`` ran one XLA
    loop (on a GPU: no kernel); at distinct indices it is now a stimulus with a
    parameter per neuron, the others' amplitudes 0. Per-place delays and a Sine's
    frequencies too; its gradient as the XLA loop's."""
    pop = _population(n=9)
    stims = [jn.StepCurrent(jnp.array([0.3, 0.1, 0.2]), jnp.array([0.5, 0.2, 1.0]), 1e9, target=(7, 2, -1)),
             jn.Sine(0.05, jnp.array([50.0, 80.0]), target=(2, 4))]
    ref = jn.simulate(pop, 3.0, stimuli=stims, backend="xla")
    got = jn.simulate(pop, 3.0, stimuli=stims, backend=backend)
    np.testing.assert_allclose(np.asarray(got.v), np.asarray(ref.v), rtol=0, atol=1e-9)
    alone = np.asarray(jn.simulate(pop, 3.0, backend="xla").v)  # the others get no current
    np.testing.assert_array_equal(np.asarray(got.v)[:, [0, 1, 3, 5, 6]], alone[:, [0, 1, 3, 5, 6]])
    assert np.all(np.abs(np.asarray(got.v) - alone)[-1, [2, 4, 7, 8]] > 0.1)

    def loss(amp, backend):
        step = jn.StepCurrent(amp, 0.2, 1e9, target=(7, 2, 8))
        return jnp.sum(jn.simulate(pop, 2.0, stimuli=[step], backend=backend).v[-1] ** 2)

    amp = jnp.array([0.3, 0.1, 0.2])
    np.testing.assert_allclose(jax.grad(loss)(amp, backend), jax.grad(loss)(amp, "xla"), rtol=1e-8)


def test_targeted_stimuli_across_blocks_equal_xla():
    """Targets in several kernel blocks (block 128 here; one neuron targeted twice):
    each program sees its slice of per-neuron weights. Gradients w.r.t. the amplitude
    too."""
    pop = _population(n=300)
    def run(amp, backend):
        stim = jn.StepCurrent(amp, 1.0, 1e9, target=(1, 200, 200, -1))
        return jn.simulate(pop, 8.0, dt=0.025, stimuli=[stim], save_every=0.5, backend=backend).v

    a, b = run(0.3, "xla"), run(0.3, "pallas")
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-9)
    moved = np.max(np.abs(np.asarray(a) - np.asarray(a[0])), axis=0)
    assert np.all(moved[[1, 200, 299]] > 50.0) and np.all(moved[[0, 150, 298]] < 2.0)  # spikes vs drift
    # Targets are checked as on the XLA path (not wrapped round the population).
    bad = jn.StepCurrent(0.1, 0.0, 1.0, target=(500,))
    for backend in ("xla", "pallas"):
        with pytest.raises(ValueError, match=r"target=\(500,\) out of range for 300 compartments"):
            jn.simulate(pop, 1.0, stimuli=[bad], backend=backend)
    ga = jax.grad(lambda x: jnp.sum(run(x, "xla")[:, 200]))(0.3)
    gb = jax.grad(lambda x: jnp.sum(run(x, "pallas")[:, 200]))(0.3)
    np.testing.assert_allclose(gb, ga, rtol=1e-9)


def _lower_for_cuda(fn, *args):
    """``jax.jit(fn)`` lowered for CUDA on this machine, as text. Skips only when this
    jaxlib has no CUDA lowering at all; a lowering error inside the kernel (Triton's
    included) fails the test."""
    try:
        return jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",)).as_text()
    except Exception as e:
        try:  # skip only if nothing lowers for CUDA here, not for an error of fn's own
            jax.jit(lambda x: x + 1).trace(1.0).lower(lowering_platforms=("cuda",))
        except Exception:
            pytest.skip(f"no CUDA lowering in this jaxlib: {e}")
        raise


def _lower_kernel_for_cuda(model, stimulus, t1=5.0):
    """The fused kernel (not interpreted, blocks of 128) for ``model`` with its default
    solver and ``stimulus``, from its default initial state, lowered for CUDA as text
    (see :func:`_lower_for_cuda`)."""
    import diffrax

    from jaxneuro.backends import pallas as P
    from jaxneuro.solve.system import System, vector_field

    system = System(model=model, stimuli=(stimulus,))
    y0 = model.init_state(model.default_v0)
    n_save = int(round(t1 / 0.5)) + 1

    from jaxneuro.solve import fixed_step

    grid = fixed_step.make_grid(0.0, t1, 0.025, 20, n_save)

    def run(system, y0):
        return P._fused(model.default_solver(), diffrax.ODETerm(vector_field), y0, system, ("v",),
                        fixed_step.make_span(0.0, t1), grid, interpret=False, block=128, **P.settings())

    return _lower_for_cuda(run, system, y0)


def test_kernel_lowers_for_gpu_through_triton():
    """Without a GPU, lower the fused kernel for CUDA: the Pallas→Triton lowering runs
    here and must accept every operation of the HH step."""
    from jaxneuro.solve.summary import SpikeDetector

    with jax.enable_x64(False):
        model = SpikeDetector(_population(n=300, dtype=jnp.float32), threshold=0.0, capacity=16)
        text = _lower_kernel_for_cuda(model, jn.StepCurrent(0.2, 2.0, 1e9))
    assert "triton" in text.lower()
    # float32: the step's exponentials as the native exp2, none left to CUDA's expf.
    assert "__nv_exp2f" in text and "__nv_expf" not in text


def test_kernel_keeps_accurate_exp_when_asked(monkeypatch):
    """``NATIVE_EXP = False``: the kernel lowers ``exp`` to CUDA's accurate ``expf``."""
    from jaxneuro.backends import pallas as P

    monkeypatch.setattr(P, "NATIVE_EXP", False)
    with jax.enable_x64(False):
        text = _lower_kernel_for_cuda(_population(n=300, dtype=jnp.float32), jn.StepCurrent(0.2, 2.0, 1e9))
    assert "__nv_expf" in text and "__nv_exp2f" not in text


@pytest.mark.parametrize("build", [lambda: jn.AdEx(n=300), lambda: jn.Izhikevich(n=300)], ids=["adex", "izhikevich"])
def test_point_neuron_kernels_lower_for_gpu_through_triton(build):
    """The point neurons' in-step events (their upswing estimate and the voltage carried
    towards it) lower for CUDA too."""
    with jax.enable_x64(False):
        text = _lower_kernel_for_cuda(build(), jn.StepCurrent(1.0, 2.0, 1e9))
    assert "triton" in text.lower()


def test_gradient_through_kernel_lowers_for_gpu():
    """Reverse mode with respect to a stimulus amplitude, lowered for CUDA: the kernel
    then takes the amplitude as a traced scalar. A ``jnp.where`` between it and 0 was
    lowered by Triton with a boolean type (seen on an H200); the stimuli use a product
    instead. Also the ramp and sine waveforms."""
    import diffrax

    from jaxneuro.backends import pallas as P
    from jaxneuro.solve.system import System, vector_field

    model = _population(n=300)
    y0 = model.init_state(-65.0)
    waveforms = {
        "step": lambda a: jn.StepCurrent(a, 1.0, 1e9, target=(1, 200, 200, -1)),
        "ramp": lambda a: jn.Ramp(0.0, a, 1.0, 5.0),
        "sine": lambda a: jn.Sine(a, 40.0, 1.0, 5.0),
    }
    for name, make in waveforms.items():
        def loss(amp, make=make):
            system = System(model=model, stimuli=(make(amp),))
            saved, _ = P.integrate(jn.StaggeredEuler(), diffrax.ODETerm(vector_field), y0, system, record=("v",),
                                   t0=0.0, t1=2.0, dt=0.025, save_every_steps=20, n_save=5, interpret=False)
            # Not linear in v: the gradient needs the kernel's values (a linear loss's
            # does not, and the kernel is then left out of the program).
            return jnp.sum(saved["v"] ** 2)

        try:
            text = _lower_for_cuda(jax.grad(loss), 0.3)
        except Exception as e:  # name the waveform that failed
            raise AssertionError(f"{name}: {e}") from e
        assert "triton" in text.lower(), name



def test_spike_buffer_scatter_equals_select():
    """The XLA loop's spike buffers: a scatter (GPUs) and a select (CPUs) write the same
    slots, leave full buffers alone, and pass the same gradients to the spike times."""
    from jaxneuro.solve.summary import write_by_scatter, write_by_select

    rng = np.random.default_rng(0)
    spikes = jnp.asarray(np.where(rng.random((5, 3, 4)) < 0.3, rng.random((5, 3, 4)), np.inf))
    count = jnp.asarray(rng.integers(0, 6, (5, 3)), dtype=float)  # 4 and 5: full buffers
    crossed = jnp.asarray(rng.random((5, 3)) < 0.6)
    t = jnp.asarray(rng.random((5, 3)))
    a, b = write_by_select(spikes, count, crossed, t), write_by_scatter(spikes, count, crossed, t)
    np.testing.assert_array_equal(b, a)
    written = np.asarray(crossed) & (np.asarray(count) < 4)
    assert written.sum() >= 3 and (np.asarray(crossed) & ~written).sum() >= 1
    assert np.sum(np.asarray(a) != np.asarray(spikes)) == written.sum()

    def loss(write, t):
        s = write(spikes, count, crossed, t)
        return jnp.sum(jnp.where(jnp.isfinite(s), s, 0.0) ** 2)

    ga, gb = jax.grad(lambda x: loss(write_by_select, x))(t), jax.grad(lambda x: loss(write_by_scatter, x))(t)
    np.testing.assert_allclose(gb, ga, rtol=1e-15)
    assert np.all((np.asarray(ga) != 0) == written)


@pytest.mark.parametrize("model", ["summary", "lif"])
def test_xla_loop_scatters_spike_times_on_gpus_only(model):
    """A scatter keeps XLA's CPU loop from compiling into one kernel, so the CPU
    program selects; lowered for CUDA, the XLA loop scatters one spike time per neuron
    instead of rewriting every slot (spike summaries and point neurons' own buffers)."""
    def run(g):
        if model == "lif":
            return jn.simulate(jn.LIF(n=4, gL=g), 2.0, stimuli=[jn.StepCurrent(2.0, 0.0, 1e9)],
                               backend="xla").spikes
        m = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH(gnabar=g)], n=4)
        return jn.simulate(m, 2.0, record=(), backend="xla", summary=SpikeSummary(capacity=4)).spikes

    g = jnp.linspace(0.1, 0.15, 4)
    assert "stablehlo.scatter" not in jax.jit(run).trace(g).lower(lowering_platforms=("cpu",)).as_text()
    if jax.default_backend() == "cpu":
        assert "small_call" in jax.jit(run).lower(g).compile().as_text()  # one kernel
    assert "stablehlo.scatter" in _lower_for_cuda(run, g)


@pytest.mark.parametrize("neuron, amp_max, capacity", [
    (jn.LIF, 3.0, 100), (jn.AdEx, 1.0, 100), (jn.Izhikevich, 200.0, 3)])
def test_point_neurons_through_kernel_equal_xla(neuron, amp_max, capacity):
    """Spiking point neurons (reset, refractoriness, their own spike buffers of a
    length that is no power of two) in the fused kernel: as in the XLA loop, including
    a buffer that overflows (Izhikevich, 3 slots)."""
    model = neuron(n=6, spike_capacity=capacity)
    kw = dict(stimuli=[jn.StepCurrent(jnp.linspace(0.0, amp_max, 6), 1.0, 1e9)], save_every=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the overflow is reported; tested elsewhere
        a = jn.simulate(model, 40.0, backend="xla", **kw)
        b = jn.simulate(model, 40.0, backend="pallas", **kw)
    assert b.spikes.shape == a.spikes.shape == (6, capacity)
    np.testing.assert_allclose(b.v, a.v, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(b.spike_count, a.spike_count)
    np.testing.assert_allclose(b.spikes, a.spikes, rtol=0, atol=1e-9)
    assert a.spike_count[0] == 0 and a.spike_count[-1] >= 2
    if capacity == 3:
        assert a.spike_count.max() > 3 and np.all(np.isfinite(a.spikes[-1]))


def test_second_derivatives_through_the_kernel_equal_xla():
    """Hessians in both modes (before: the JVP rule's value was the bare kernel, so a
    second derivative differentiated the kernel and failed). Each compiled as one
    program (op by op, some 80 programs: nearly twice the compile time)."""
    def loss(g, backend):
        m = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH(gnabar=g * jnp.array([1.0, 1.3]))], n=2)
        tr = jn.simulate(m, 8.0, dt=0.025, stimuli=[jn.StepCurrent(0.2, 1.0, 1e9)], save_every=0.5, backend=backend)
        return jnp.mean(tr.v)

    want = jax.jit(jax.grad(jax.grad(lambda g: loss(g, "xla"))))(0.1)
    assert abs(float(want)) > 1.0
    for second in (jax.hessian, lambda f: jax.grad(jax.grad(f))):  # forward over reverse, reverse over reverse
        np.testing.assert_allclose(jax.jit(second(lambda g: loss(g, "pallas")))(0.1), want, rtol=1e-9)


@pytest.mark.parametrize("flush_every", [2, 3, 8])
@pytest.mark.parametrize("timing", ["interpolated", "neuron"])
def test_held_back_crossings_equal_xla(monkeypatch, flush_every, timing):
    """``pallas.SPIKE_FLUSH_EVERY``: crossings held back in the kernel and written every
    few steps give the XLA loop's spikes and counts, in the densest case possible (an
    upward crossing every second step: a 20 kHz current about a fast membrane's rest,
    the threshold) and with the buffer overflowing (64 crossings, 16 slots). Odd
    intervals need ``ceil(k/2)`` held slots: ``k // 2`` loses spikes here."""
    from jaxneuro.backends import pallas as P

    monkeypatch.setattr(P, "SPIKE_FLUSH_EVERY", flush_every)
    model = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.Leak(g=0.05, e=-65.0)], n=5)
    stim = jn.Sine(amp=jnp.linspace(0.5, 1.5, 5), freq=1000.0 / (2 * 0.025))
    runs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the overflow is reported; tested elsewhere
        for capacity in (16, 64):
            for backend in ("xla", "pallas"):
                runs[capacity, backend] = jn.simulate(
                    model, 3.2, dt=0.025, stimuli=[stim], record=(), backend=backend,
                    summary=SpikeSummary(threshold=-65.0, capacity=capacity, timing=timing))
    for capacity in (16, 64):
        a, b = runs[capacity, "xla"], runs[capacity, "pallas"]
        np.testing.assert_array_equal(b.spike_count, a.spike_count)
        np.testing.assert_array_equal(np.isfinite(b.spikes), np.isfinite(a.spikes))
        np.testing.assert_allclose(b.spikes, a.spikes, rtol=0, atol=1e-12)
    # One every 0.05 ms: the first in the first step, which starts exactly at the
    # threshold (NEURON's NetCon counts a rise from there too).
    assert np.all(runs[64, "xla"].spike_count == 64)
    np.testing.assert_allclose(np.diff(np.asarray(runs[64, "xla"].spikes)[:, 40:50]), 0.05, atol=1e-6)
    # HH, a few spikes per neuron, and a full buffer (capacity 3).
    monkeypatch.setattr(P, "SPIKE_FLUSH_EVERY", flush_every)
    a = _run("xla", summary=SpikeSummary(capacity=3, timing=timing))
    b = _run("pallas", summary=SpikeSummary(capacity=3, timing=timing))
    np.testing.assert_array_equal(b.spike_count, a.spike_count)
    np.testing.assert_allclose(b.spikes, a.spikes, rtol=0, atol=1e-9)
    np.testing.assert_allclose(b.v, a.v, rtol=0, atol=1e-9)


def test_held_back_crossings_lower_for_gpu(monkeypatch):
    """The kernel with held-back crossings (a flush every 8 steps) gets through the
    Pallas→Triton lowering."""
    from jaxneuro.backends import pallas as P
    from jaxneuro.solve.summary import SpikeDetector

    monkeypatch.setattr(P, "SPIKE_FLUSH_EVERY", 8)
    with jax.enable_x64(False):
        model = SpikeDetector(_population(n=300, dtype=jnp.float32), threshold=0.0, capacity=16)
        assert "triton" in _lower_kernel_for_cuda(model, jn.StepCurrent(0.2, 2.0, 1e9)).lower()
    # Only a loop that flushes them may hold crossings back: not a user's setting.
    with pytest.raises(TypeError, match="pending_slots"):
        SpikeDetector(_population(n=3), pending_slots=2)


def test_kernel_settings_changed_after_a_run_reach_the_next_run(monkeypatch):
    """NATIVE_EXP and SPIKE_FLUSH_EVERY were read inside the compiled function, whose
    cache does not know them: set after a first run, they never reached the kernel.
    They are now its static arguments (``pallas.settings()``), read when a run starts."""
    from jaxneuro.backends import pallas as P

    built = []
    fused = P._fused

    def counting(*args, **kw):
        built.append((kw["use_native_exp"], kw["spike_flush_every"]))
        return fused(*args, **kw)

    monkeypatch.setattr(P, "_fused", counting)
    model = _population(n=5, dtype=jnp.float32)
    for native, flush in ((True, 1), (False, 1), (False, 4), (False, 4)):
        monkeypatch.setattr(P, "NATIVE_EXP", native)
        monkeypatch.setattr(P, "SPIKE_FLUSH_EVERY", flush)
        jn.simulate(model, 1.0, stimuli=[jn.StepCurrent(0.2, 0.1, 1e9)], backend="pallas", record=(),
                    summary=SpikeSummary(capacity=4)).spike_count.block_until_ready()
    assert built == [(True, 1), (False, 1), (False, 4)]  # the last run reused the third's kernel
    # Bad settings are named, not rounded (int(2.5) would have flushed every 2 steps).
    monkeypatch.setattr(P, "SPIKE_FLUSH_EVERY", 2.5)
    with pytest.raises(ValueError, match=r"jaxneuro\.backends\.pallas\.SPIKE_FLUSH_EVERY expects a positive integer, got 2\.5"):
        jn.simulate(model, 1.0, backend="pallas")
    monkeypatch.setattr(P, "SPIKE_FLUSH_EVERY", 1)
    monkeypatch.setattr(P, "NATIVE_EXP", "no")
    with pytest.raises(ValueError, match=r"jaxneuro\.backends\.pallas\.NATIVE_EXP expects True or False, got 'no'"):
        jn.simulate(model, 1.0, backend="pallas")


def test_summary_of_any_capacity_through_kernel():
    a = _run("xla", summary=SpikeSummary(capacity=3))
    b = _run("pallas", summary=SpikeSummary(capacity=3))
    assert b.spikes.shape == (6, 3)
    np.testing.assert_array_equal(b.spike_count, a.spike_count)
    np.testing.assert_allclose(b.spikes, a.spikes, rtol=0, atol=1e-9)


@pytest.mark.parametrize("neuron", [jn.LIF, jn.AdEx, jn.Izhikevich])
def test_point_neuron_kernel_lowers_for_gpu(neuron):
    """Without a GPU: Triton lowers only power-of-two shapes (the default 100-slot
    spike buffer is padded to 128 inside the kernel) and no captured constants (the
    upswing quadrature's nodes are Python floats)."""
    with jax.enable_x64(False):
        assert "triton" in _lower_kernel_for_cuda(neuron(n=300), jn.StepCurrent(1.0, 2.0, 1e9)).lower()


@pytest.mark.parametrize("channel", ["Leak", "INa_Ba2002", "IKDR_Ba2002", "IKNI_Ya1989", "ICaT_HM1992", "Ih_HM1992"])
def test_every_channel_lowers_for_gpu(channel):
    """``backend="auto"`` sends any population of compartments to the kernel on a GPU:
    each channel's step must get through the Pallas→Triton lowering (no captured
    constants, power-of-two shapes only, supported operations)."""
    from jaxneuro.backends import pallas as P

    with jax.enable_x64(False):
        chans = [getattr(jn.channels, channel)()] + ([] if channel == "Leak" else [jn.channels.Leak()])
        model = jn.Compartment(length=20.0, diam=20.0, channels=chans, n=300)
        stimulus = jn.StepCurrent(0.2, 1.0, 1e9)
        assert P.unsupported(model, jn.StaggeredEuler(), None, (stimulus,)) is None
        assert "triton" in _lower_kernel_for_cuda(model, stimulus, t1=2.0).lower()


def test_continued_run_keeps_earlier_spikes_through_kernel():
    """A run continued from another's final state through the kernel keeps the earlier
    spikes in its (padded) buffer and appends after them at slot ``count``, and a
    buffer that fills keeps its first spikes, as in the XLA loop."""
    model = jn.LIF(n=6, spike_capacity=5)
    stim = [jn.StepCurrent(jnp.linspace(0.0, 3.0, 6), 1.0, 1e9)]
    runs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the overflow is reported; tested elsewhere
        for backend in ("xla", "pallas"):
            first = jn.simulate(model, 20.0, stimuli=stim, backend=backend)
            runs[backend] = first, jn.simulate(model, 80.0, t0=20.0, init=first.final_state, stimuli=stim,
                                               backend=backend)
    (a1, a2), (b1, b2) = runs["xla"], runs["pallas"]
    np.testing.assert_array_equal(b2.spike_count, a2.spike_count)
    np.testing.assert_allclose(b2.spikes, a2.spikes, rtol=0, atol=1e-9)
    # The first run's spikes lead the continued run's buffer; some neuron overflowed.
    first_spikes = np.asarray(b1.spikes)
    kept = np.isfinite(first_spikes)
    np.testing.assert_array_equal(np.asarray(b2.spikes)[kept], first_spikes[kept])
    assert 0 < a1.spike_count[-1] < 5 < a2.spike_count[-1]
    assert np.all(np.isfinite(np.asarray(b2.spikes)[-1])) and np.all(np.asarray(b2.spikes)[-1] <= 60.0)


@pytest.mark.parametrize("neuron, param, value, amp", [
    (jn.LIF, "gL", 0.1, 3.0), (jn.AdEx, "gL", 0.03, 1.0), (jn.Izhikevich, "a", 0.02, 10.0)])
def test_point_neuron_gradients_through_kernel_equal_xla(neuron, param, value, amp):
    """Reverse and forward mode through the kernel (its values, the XLA loop's
    derivatives) for spiking point neurons, their spike times included: as the XLA
    loop's gradient."""
    def loss(p, backend):
        tr = jn.simulate(neuron(n=4, **{param: p}), 30.0, save_every=0.5, backend=backend,
                         stimuli=[jn.StepCurrent(jnp.linspace(0.5, 1.0, 4) * amp, 1.0, 1e9)])
        return jnp.mean(tr.v) + jnp.sum(jnp.where(jnp.isfinite(tr.spikes), tr.spikes, 0.0))

    # Each derivative compiled as one program (op by op it took twice as long).
    want = jax.jit(jax.grad(loss), static_argnums=1)(value, "xla")
    assert abs(float(want)) > 1.0
    np.testing.assert_allclose(jax.jit(jax.grad(loss), static_argnums=1)(value, "pallas"), want, rtol=1e-9)
    if neuron is jn.LIF:  # forward mode runs the same rule (the XLA loop's JVP): one model checks it
        np.testing.assert_allclose(jax.jit(jax.jacfwd(loss), static_argnums=1)(value, "pallas"), want, rtol=1e-9)
