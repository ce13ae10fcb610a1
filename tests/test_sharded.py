"""The sharded backend: a population split over devices equals one XLA loop.

Splitting needs several devices, which XLA_FLAGS must ask for before JAX starts, so
the comparisons run once in a subprocess with 4 CPU devices (and jaxneuro's own
setting checked there: without the flag, a process gets one device per usable core).
"""

import json
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxneuro as jn
from jaxneuro import backends
from jaxneuro.backends import sharded
from conftest import env_with_xla_flags

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp, numpy as np
    import jaxneuro as jn
    from jaxneuro import backends

    assert jax.local_device_count() == 4, jax.devices()
    out = {}

    def hh_pop(n, g=None, **kw):
        g = jnp.linspace(0.08, 0.16, n) if g is None else g
        return jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH(gnabar=g, **kw)], n=n)

    def diff(a, b):
        return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))

    # 10 neurons on 4 devices: padded to 12. Per-neuron amplitudes, a targeted stimulus
    # (one neuron twice), a spike summary, several records.
    amps = jnp.linspace(0.05, 0.3, 10)
    stims = [jn.StepCurrent(amps, 1.0, 1e9), jn.StepCurrent(0.2, 5.0, 3.0, target=(2, 7, 7))]
    kw = dict(dt=0.025, stimuli=stims, save_every=0.5, record=("v", "m_hh", "i_inj"),
              summary=jn.SpikeSummary(capacity=4))
    a = jn.simulate(hh_pop(10), 20.0, backend="xla", **kw)
    b = jn.simulate(hh_pop(10), 20.0, backend="sharded", **kw)
    out["shapes"] = [list(b.v.shape), list(b.i_inj.shape), list(b.spikes.shape)]
    out["hh"] = [diff(a.v, b.v), diff(a.m_hh, b.m_hh), diff(a.i_inj, b.i_inj),
                 diff(jnp.nan_to_num(a.spikes, posinf=-1), jnp.nan_to_num(b.spikes, posinf=-1)),
                 diff(a.spike_count, b.spike_count)]
    out["counts"] = np.asarray(a.spike_count).tolist()

    # Records whose per-device buffers exceed sharded.SAVE_BLOCK_BYTES (100 neurons per
    # device x 401 saves x 8 bytes = 320 kB) are collected in column blocks: same values.
    from jaxneuro.backends import sharded
    from jaxneuro.solve import fixed_step
    blocks = fixed_step._column_blocks(jnp.zeros(100), 400, sharded.SAVE_BLOCK_BYTES)
    kw = dict(dt=0.025, stimuli=[jn.StepCurrent(jnp.linspace(0.0, 0.4, 400), 1.0, 1e9)], save_every=0.25,
              record=("v", "m_hh", "i_inj"))
    a = jn.simulate(hh_pop(400), 100.0, backend="xla", **kw)
    b = jn.simulate(hh_pop(400), 100.0, backend="sharded", **kw)
    out["blocks"] = [[x.shape[0] for x in blocks], list(b.v.shape), diff(a.v, b.v), diff(a.m_hh, b.m_hh),
                     diff(a.i_inj, b.i_inj), float(jnp.ptp(a.v))]

    # Point neurons with their own spike buffers (events in the state).
    lif = jn.LIF(n=9)
    la = jn.simulate(lif, 50.0, stimuli=[jn.StepCurrent(jnp.linspace(0.5, 3.0, 9), 0.0, 1e9)], backend="xla")
    lb = jn.simulate(lif, 50.0, stimuli=[jn.StepCurrent(jnp.linspace(0.5, 3.0, 9), 0.0, 1e9)], backend="sharded")
    out["lif"] = [diff(la.v, lb.v), diff(la.spike_count, lb.spike_count),
                  diff(jnp.nan_to_num(la.spikes, posinf=-1), jnp.nan_to_num(lb.spikes, posinf=-1))]
    out["lif_counts"] = np.asarray(la.spike_count).tolist()

    # A recorded current of as many samples as neurons is one waveform for all of
    # them, not a per-neuron array (it used to be cut with the population).
    dc = jn.DataCurrent(values=jnp.linspace(0.0, 0.4, 10), dt=1.0)
    da = jn.simulate(hh_pop(10), 15.0, stimuli=[dc], backend="xla")
    db = jn.simulate(hh_pop(10), 15.0, stimuli=[dc], backend="sharded")
    out["data_current"] = [diff(da.v, db.v), float(jnp.ptp(da.v[:, 0]))]

    # Rate tables (gathers) run split too.
    ta = jn.simulate(hh_pop(8, use_table=True), 10.0, stimuli=[jn.StepCurrent(0.3, 1.0, 1e9)], backend="xla")
    tb = jn.simulate(hh_pop(8, use_table=True), 10.0, stimuli=[jn.StepCurrent(0.3, 1.0, 1e9)], backend="sharded")
    out["table"] = diff(ta.v, tb.v)

    # Reverse mode w.r.t. per-neuron and shared parameters; forward mode; vmap.
    def loss(g, amp, backend):
        tr = jn.simulate(hh_pop(10, g), 10.0, dt=0.025, stimuli=[jn.StepCurrent(amp, 1.0, 1e9)],
                         save_every=0.5, backend=backend)
        return jnp.mean(tr.v ** 2)

    g = jnp.linspace(0.09, 0.15, 10)
    ga = jax.grad(loss, argnums=(0, 1))(g, 0.25, "xla")
    gb = jax.grad(loss, argnums=(0, 1))(g, 0.25, "sharded")
    out["grad"] = [np.asarray(ga[0]).tolist(), float(ga[1]), np.asarray(gb[0]).tolist(), float(gb[1])]
    fa = jax.jvp(lambda x: loss(g, x, "xla"), (0.25,), (1.0,))[1]
    fb = jax.jvp(lambda x: loss(g, x, "sharded"), (0.25,), (1.0,))[1]
    out["jvp"] = [float(fa), float(fb)]
    amps2 = jnp.array([0.1, 0.2, 0.3])
    va = jax.jit(jax.vmap(lambda x: loss(g, x, "xla")))(amps2)
    vb = jax.jit(jax.vmap(lambda x: loss(g, x, "sharded")))(amps2)
    out["vmap"] = [np.asarray(va).tolist(), np.asarray(vb).tolist()]

    # Inside jn.sweep, which splits its chunks over the same devices by parameter set.
    def counts(p, backend):
        m = hh_pop(10, g=p["g"] * jnp.ones(10))
        tr = jn.simulate(m, 10.0, stimuli=[jn.StepCurrent(amps, 1.0, 1e9)], record=(), backend=backend,
                         summary=jn.SpikeSummary(capacity=4))
        return {"count": tr.spike_count}
    grid = {"g": np.linspace(0.08, 0.16, 6)}
    sa = jn.sweep(lambda p: counts(p, "xla"), grid, batch_size=4)
    sb = jn.sweep(lambda p: counts(p, "sharded"), grid, batch_size=4)
    out["sweep"] = [list(sb["count"].shape), int(np.sum(sa["count"] != sb["count"])), int(sa["count"].sum())]

    # Each device running the fused kernel (Pallas' interpret mode here), as on GPUs.
    import diffrax
    from jaxneuro.backends import sharded
    from jaxneuro.solve.system import System, vector_field
    system = System(model=hh_pop(10), stimuli=(jn.StepCurrent(amps, 1.0, 1e9),))
    y0 = system.model.init_state(-65.0)
    kw = dict(record=("v",), t0=0.0, t1=10.0, dt=0.025, save_every_steps=20, n_save=21)
    args = (jn.StaggeredEuler(), diffrax.ODETerm(vector_field), y0, system)
    xs, _ = sharded.integrate(*args, loop="xla", **kw)
    ps, _ = sharded.integrate(*args, loop="pallas", **kw)
    out["kernel_per_device"] = [list(ps["v"].shape), diff(xs["v"], ps["v"]), float(jnp.ptp(xs["v"]))]

    # Eager calls (no jit around simulate) compile once: the split path compiled its
    # program again on every call (1-2 s each, against a few ms).
    import logging
    compiles = []

    class Count(logging.Handler):
        def emit(self, record):
            if "Finished XLA compilation" in record.getMessage():
                compiles.append(record.getMessage())

    jax.config.update("jax_log_compiles", True)
    log = logging.getLogger("jax")
    log.addHandler(Count()); log.setLevel(logging.DEBUG); log.propagate = False
    eager = []
    for amp in (0.1, 0.2, 0.3):
        before = len(compiles)
        jn.simulate(hh_pop(10), 5.0, stimuli=[jn.StepCurrent(amp, 1.0, 1e9)], backend="sharded").v.block_until_ready()
        eager.append(len(compiles) - before)
    jax.config.update("jax_log_compiles", False)
    out["eager_compiles"] = eager

    # Large slices run block after block (sharded.NEURON_BLOCK neurons each, here 16:
    # 203 neurons, 51 per device padded to 56, 4 blocks each): values, spikes, a spike
    # summary and gradients as one loop's.
    old_block, sharded.NEURON_BLOCK = sharded.NEURON_BLOCK, 16
    stims = [jn.StepCurrent(jnp.linspace(0.0, 0.4, 203), 1.0, 1e9), jn.StepCurrent(0.3, 2.0, 1.0, target=(5, 170))]
    kw = dict(stimuli=stims, save_every=0.5, record=("v", "m_hh"), summary=jn.SpikeSummary(capacity=4))
    a = jn.simulate(hh_pop(203), 15.0, backend="xla", **kw)
    b = jn.simulate(hh_pop(203), 15.0, backend="sharded", **kw)

    def block_loss(g, backend):
        return jnp.mean(jn.simulate(hh_pop(203, g), 2.0, stimuli=stims[:1], save_every=0.5, backend=backend).v)

    g203 = jnp.linspace(0.08, 0.16, 203)
    grad_xla = jax.grad(block_loss)(g203, "xla")
    out["neuron_blocks"] = {
        "blocks": [sharded.neuron_blocks(56), sharded.neuron_blocks(32)],
        "shape": list(b.v.shape), "v": diff(a.v, b.v), "m": diff(a.m_hh, b.m_hh),
        "count": diff(a.spike_count, b.spike_count), "fired": int(np.sum(np.asarray(a.spike_count) > 0)),
        "spikes": diff(jnp.nan_to_num(a.spikes, posinf=-1), jnp.nan_to_num(b.spikes, posinf=-1)),
        "grad": diff(grad_xla, jax.grad(block_loss)(g203, "sharded")),
        "grad_size": float(jnp.max(jnp.abs(grad_xla))),
    }
    sharded.NEURON_BLOCK = old_block

    # A population put on one device (jax.device_put commits it there): "auto" runs it
    # there in one loop, as "xla" does; "sharded" (all devices) says why it cannot. Both
    # raised JAX's "incompatible devices" from inside the split program.
    # (203 neurons, as above: their arrays' eager operations are compiled already.)
    dev = jax.devices()[3]
    pinned = jax.device_put(hh_pop(203), dev)
    step = jn.StepCurrent(jnp.linspace(0.0, 0.3, 203), 0.5, 1e9)
    ref = jn.simulate(hh_pop(203), 2.0, stimuli=[step], backend="xla").v
    on_dev = jn.simulate(pinned, 2.0, stimuli=[jax.device_put(step, dev)]).v
    try:
        jn.simulate(pinned, 2.0, stimuli=[step], backend="sharded")
        refused = None
    except ValueError as e:
        refused = str(e)
    # Under jax.default_device, "auto" stays on that device too (it split over all).
    with jax.default_device(jax.devices()[2]):
        chosen = backends.choose("auto", hh_pop(203), jn.StaggeredEuler(), hh_pop(203).init_state(-65.0))
        on_default = jn.simulate(hh_pop(203), 2.0, stimuli=[step]).v
    out["committed"] = {"devices": sorted(d.id for d in on_dev.devices()), "diff": diff(on_dev, ref),
                        "ptp": float(jnp.ptp(ref)), "refused": refused,
                        "uncommitted": backends.choose("auto", hh_pop(203), jn.StaggeredEuler(),
                                                        hh_pop(203).init_state(-65.0)),
                        "default_device": {"chosen": chosen, "devices": sorted(d.id for d in on_default.devices()),
                                           "diff": diff(on_default, ref)}}

    # A jitted split run's program text does not grow with the population: padding
    # each device's slice took a NumPy index, a constant of the padded size per leaf
    # (some 0.4 MB each at 10^5 neurons). Lowered only, not compiled.
    def text_size(n):
        def fn(g):
            tr = jn.simulate(hh_pop(n, g), 1.0, stimuli=[jn.StepCurrent(0.2, 0.0, 1e9)], record=(),
                             summary=jn.SpikeSummary(capacity=4), backend="sharded")
            return tr.spike_count
        return len(jax.jit(fn).lower(jnp.linspace(0.08, 0.16, n)).as_text())
    out["program_text"] = [text_size(20001), text_size(40001)]

    # What "auto" picks on a CPU with 4 devices.
    # (Each state from one compiled program: op by op, each new shape compiled some 17.)
    import equinox as eqx
    solver = jn.StaggeredEuler()
    init_state = eqx.filter_jit(lambda model: model.init_state(-65.0))
    def pick(model):
        return backends.choose("auto", model, solver, init_state(model))
    cable = jn.Cable(length=100.0, diam=1.0, nseg=80, channels=[jn.channels.HH()])
    out["auto"] = {"n192": pick(hh_pop(192)), "n191": pick(hh_pop(191)), "cable": pick(cable),
                   "single": pick(jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()]))}
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def split_results(tmp_path_factory):
    script = tmp_path_factory.mktemp("sharded") / "split.py"
    script.write_text(SCRIPT)
    env = env_with_xla_flags("--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    p = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_split_population_equals_one_loop(split_results):
    r = split_results
    assert r["shapes"] == [[41, 10], [41, 10], [10, 4]]  # padding neurons dropped
    # Same arithmetic per neuron: equal to rounding (XLA's code for a slice may fuse a
    # multiply-add the whole population's code does not; LIF happens to be exact).
    dv, dm, di, dspikes, dcount = r["hh"]
    assert dv < 1e-9 and dm < 1e-12 and di < 1e-15 and dspikes < 1e-9 and dcount == 0
    assert min(r["counts"]) == 0 and max(r["counts"]) >= 2  # some spike, some do not
    assert r["lif"] == [0.0, 0.0, 0.0]
    assert min(r["lif_counts"]) >= 0 and max(r["lif_counts"]) >= 3
    assert r["table"] < 1e-12
    dv, swing = r["data_current"]
    assert dv < 1e-12 and swing > 5.0


def test_large_slices_run_in_neuron_blocks(split_results):
    # A device's slice of more than 2 x NEURON_BLOCK neurons runs block after block
    # (lax.map of the time loop over blocks): same values, spikes, summaries, gradients.
    r = split_results["neuron_blocks"]
    assert r["blocks"] == [4, 1] and r["shape"] == [31, 203]
    assert r["v"] < 1e-9 and r["m"] < 1e-12 and r["count"] == 0 and r["spikes"] < 1e-9
    assert 10 < r["fired"] < 203  # some neurons fire, some do not
    assert r["grad"] < 1e-9 * r["grad_size"] and r["grad_size"] > 0


def test_large_records_are_saved_in_column_blocks(split_results):
    # 100 neurons' columns of 400 saves in float64: 81 per block of at most 256 KiB.
    widths, shape, dv, dm, di, swing = split_results["blocks"]
    assert widths == [81, 19] and shape == [401, 400]
    assert dv < 1e-9 and dm < 1e-12 and di == 0.0 and swing > 50.0


def test_save_block_bytes_must_be_a_positive_int():
    import diffrax

    from jaxneuro.solve import fixed_step
    from jaxneuro.solve.system import System, vector_field

    system = System(model=jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()], n=2), stimuli=())
    kw = dict(record=("v",), t0=0.0, t1=1.0, dt=0.025, save_every_steps=20, n_save=3)
    args = (jn.StaggeredEuler(), diffrax.ODETerm(vector_field), system.model.init_state(-65.0), system)
    for bad in (0, -5, 1.5, True):
        with pytest.raises(ValueError, match="save_block_bytes expects None or a positive int"):
            fixed_step.integrate(*args, save_block_bytes=bad, **kw)
    # Two saves after the first, float64: 16 bytes a column, so one column per block.
    assert len(fixed_step._column_blocks(jnp.zeros(2), 2, 16)) == 2
    saved, _ = fixed_step.integrate(*args, save_block_bytes=16, **kw)
    whole, _ = fixed_step.integrate(*args, **kw)
    np.testing.assert_array_equal(np.asarray(saved["v"]), np.asarray(whole["v"]))


def test_column_blocks_cut_only_what_does_not_fit():
    from jaxneuro.solve.fixed_step import _column_blocks

    x = jnp.arange(10.0, dtype=jnp.float32)
    assert _column_blocks(x, 4, 10_000) is x  # fits
    assert [b.tolist() for b in _column_blocks(x, 4, 64)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert _column_blocks(x, 100, 64) is x  # one column is already larger: left whole
    scalar = jnp.float32(1.0)
    assert _column_blocks(scalar, 4, 1) is scalar
    # At most _MAX_BLOCKS (8) blocks, else whole: ~1000 blocks per core (2000 neurons,
    # 1600 ms saved every step) took 22 s to compile.
    assert _column_blocks(x, 4, 16) is x
    assert [b.tolist() for b in _column_blocks(x, 2, 16)] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    big = jnp.zeros(1000, jnp.float32)
    assert _column_blocks(big, 64_000, 256 << 10) is big
    assert len(_column_blocks(jnp.zeros(504), 400, 256 << 10)) == 7  # pop1k's float64 slice per core


def test_split_population_inside_a_sweep(split_results):
    shape, mismatch, total = split_results["sweep"]
    assert shape == [6, 10] and mismatch == 0 and total > 0


def test_each_device_can_run_the_fused_kernel(split_results):
    shape, dv, swing = split_results["kernel_per_device"]
    assert shape == [21, 10] and swing > 50.0  # spikes in it
    assert dv < 1e-9


def test_split_population_gradients(split_results):
    g_xla, amp_xla, g_split, amp_split = split_results["grad"]
    assert np.all(np.abs(g_xla) > 0) and abs(amp_xla) > 0
    # The shared amplitude's cotangent is summed over the devices' slices.
    np.testing.assert_allclose(g_split, g_xla, rtol=1e-12, atol=0)
    np.testing.assert_allclose(amp_split, amp_xla, rtol=1e-12)
    fa, fb = split_results["jvp"]
    np.testing.assert_allclose(fb, fa, rtol=1e-12)
    np.testing.assert_allclose(fa, amp_xla, rtol=1e-9)  # forward and reverse mode agree
    va, vb = split_results["vmap"]
    np.testing.assert_allclose(vb, va, rtol=1e-12)
    assert va[0] != va[2]


def test_eager_calls_compile_the_split_population_once(split_results):
    first, *later = split_results["eager_compiles"]
    assert first > 0 and later == [0, 0]


def test_a_split_programs_text_does_not_grow_with_the_population(split_results):
    # 20001 and 40001 neurons, both padded; the NumPy index tables took 8 hex digits per
    # padded neuron and leaf (over 1 MB between the two); both run in neuron blocks.
    small, large = split_results["program_text"]
    assert small > 1000 and abs(large - small) < 2000, (small, large)


def test_auto_splits_populations_of_enough_neurons(split_results):
    per_device = sharded.MIN_PER_DEVICE
    assert 4 * per_device <= 192 < 4 * per_device + 4
    assert split_results["auto"] == {"n192": "sharded", "n191": "xla", "cable": "xla", "single": "xla"}


def test_a_population_put_on_one_device_runs_there(split_results):
    r = split_results["committed"]
    assert r["uncommitted"] == "sharded"  # the same population, not put anywhere, is split
    assert r["devices"] == [3] and r["diff"] == 0.0 and r["ptp"] > 1.0
    assert r["refused"] is not None
    assert r["refused"].startswith("backend='sharded': splits the population over all 4 local devices")
    assert "put on one device (cpu:3, as jax.device_put does)" in r["refused"]
    assert "use backend='xla' (or 'auto')" in r["refused"]
    assert r["default_device"] == {"chosen": "xla", "devices": [2], "diff": 0.0}


def test_what_cannot_be_split_is_a_clear_error():
    cable = jn.Cable(length=100.0, diam=1.0, nseg=3, channels=[jn.channels.HH()])
    with pytest.raises(ValueError, match="backend='sharded': needs independent compartments"):
        jn.simulate(cable, 1.0, backend="sharded")
    single = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()])
    with pytest.raises(ValueError, match=r"needs a population of shape \(n,\), got a model of shape \(\)"):
        jn.simulate(single, 1.0, backend="sharded")
    pop = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()], n=4)
    per_target = jn.StepCurrent(jnp.array([0.1, 0.2]), 0.0, 1e9, target=(1, 3))
    assert "per-target parameters" in sharded.unsupported(pop, None, None, [per_target])
    assert sharded.unsupported(pop, None, None, devices=jax.local_devices()[:1]) == (
        "needs more than one device, found 1")
    with pytest.raises(ValueError, match="backend expects one of .*'sharded'"):
        backends.choose("threads", pop, None, None)
    with pytest.raises(ValueError, match="devices expects at least one device, got none"):
        sharded.integrate(None, None, None, None, record=("v",), t0=0.0, t1=1.0, dt=0.1,
                          save_every_steps=1, n_save=11, devices=[])
    with pytest.raises(ValueError, match="loop expects 'xla' or 'pallas', got 'cuda'"):
        sharded.integrate(None, None, None, None, record=("v",), t0=0.0, t1=1.0, dt=0.1,
                          save_every_steps=1, n_save=11, loop="cuda")


def test_cpu_device_slices_are_padded_to_whole_vector_registers():
    # XLA's CPU loops do a remainder that fills no 512-bit register value by value.
    assert sharded._whole_vectors(500, jnp.float64) == 504
    assert sharded._whole_vectors(500, jnp.float32) == 512
    assert sharded._whole_vectors(16, jnp.float32) == 16
    assert sharded._whole_vectors(3, jnp.float64) == 8


def test_blocks_are_equal_and_in_whole_vectors():
    # A core's 1025 neurons ran as 3 blocks of 512 (a third of the work padding: 2050 HH
    # neurons took 1.33x the time of 2048); now equal blocks, each in whole vectors.
    from jaxneuro.backends import sharded

    assert sharded.NEURON_BLOCK == 512
    assert sharded.block_layout(1024, jnp.float64) == (1, 1024)
    assert sharded.block_layout(1025, jnp.float64) == (3, 344)
    assert sharded.block_layout(1040, jnp.float32) == (3, 352)
    assert sharded.block_layout(5000, jnp.float32) == (10, 512)
    for count in (1025, 1537, 3000, 4999):
        blocks, size = sharded.block_layout(count, jnp.float64)
        assert size <= sharded.NEURON_BLOCK and size % 8 == 0 and count <= blocks * size < count + 8 * blocks
