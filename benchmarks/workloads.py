"""The benchmark workloads, each built for jaxneuro, NEURON and Jaxley.

All use dt = 0.025 ms and NEURON's ``hh`` at 6.3 °C, with a step current of 0.2 nA from
10 ms on. Every builder returns a :class:`Run`: a function that simulates once and
returns ``(t, v)`` (ms; mV of shape ``(T, k)`` sampled every ``SAVE`` ms at the
workload's comparison points), plus, for JAX simulators, what to compile.

- ``hh1``: one HH compartment (L = diam = 20 µm), 1000 ms.
- ``pop1k``: 1000 independent HH compartments, gnabar from 0.08 to 0.16 S/cm², 100 ms.
- ``tree1k``: one cell of 10 branches (binary tree, parents [-1, 0, 0, 1, 1, 2, 2, 3, 3,
  4]) of 100 compartments each (1000 µm, diam 2 µm, Ra 100 Ω·cm, HH everywhere),
  stimulated at the root's first compartment; recorded there and at the last
  compartment of branch 9. 100 ms.
- ``grad_tree1k``: the gradient of the mean tip voltage of ``tree1k`` with respect to
  the 10 per-branch gnabar values.
- ``gpu_pop{10k,100k,1m}``: like ``pop1k`` at 10⁴-10⁶ neurons, with spike summaries only
  (``record=()``, ``jn.SpikeSummary``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

DT = 0.025
SAVE = 0.25
AMP, DELAY = 0.2, 10.0
PARENTS = [-1, 0, 0, 1, 1, 2, 2, 3, 3, 4]
N_BRANCH, N_COMP = 10, 100
BRANCH_L, BRANCH_DIAM, RA = 1000.0, 2.0, 100.0
V_INIT = -65.0

WORKLOADS = {
    "hh1": dict(t1=1000.0, n=1),
    "pop1k": dict(t1=100.0, n=1000),
    "tree1k": dict(t1=100.0, n=N_BRANCH * N_COMP),
    "grad_tree1k": dict(t1=100.0, n=N_BRANCH * N_COMP),
    "gpu_pop10k": dict(t1=100.0, n=10_000),
    "gpu_pop100k": dict(t1=100.0, n=100_000),
    "gpu_pop1m": dict(t1=100.0, n=1_000_000),
}


def gnabar_values(n):
    return np.linspace(0.08, 0.16, n)


def branch_gnabar():
    return np.linspace(0.10, 0.14, N_BRANCH)


@dataclasses.dataclass
class Run:
    """``call()`` runs once (blocking) and returns its raw output; ``convert(output)``
    turns that into ``(t, v)`` or, for gradients, the gradient vector (NumPy). Only
    ``call`` is timed: for JAX simulators it ends when the device has finished, so
    copying results to the host (tens of MB for a million neurons' spike times) is not
    charged to the simulation. ``compile()`` (JAX only) compiles and returns seconds
    spent."""

    call: Callable
    compile: Callable | None = None
    convert: Callable = lambda out: out  # noqa: E731


def _jitted_run(fn, arg, convert):
    """A :class:`Run` of ``jax.jit(fn)(arg)``, compiled ahead of time by ``compile``;
    ``convert`` turns the output into NumPy results."""
    import time

    import jax

    jitted = jax.jit(fn)
    state = {}

    def compile_():
        t = time.perf_counter()
        state["f"] = jitted.lower(arg).compile()
        return time.perf_counter() - t

    def call():
        return jax.block_until_ready(state.get("f", jitted)(arg))

    return Run(call=call, compile=compile_, convert=convert)


def first_and_median(call, repeats=5):
    """``(first call's seconds, median seconds of ``repeats`` later calls, last output as
    NumPy)`` of ``call``, which returns ``(seconds, output)``: an eager jaxneuro call
    timed as a user meets it (the first compiles) and once compiled."""
    first, _ = call()
    times, out = [], None
    for _ in range(repeats):
        t, out = call()
        times.append(t)
    return first, float(np.median(times)), np.asarray(out)


def compile_and_time(fn, arg, repeats=5):
    """``(median run time s, compile time s, output as NumPy)`` of ``jax.jit(fn)(arg)``:
    compiled ahead of time, run once, then timed ``repeats`` times up to the end of the
    device's work (copying results to the host is left out)."""
    import statistics
    import time

    import jax

    t = time.perf_counter()
    compiled = jax.jit(fn).lower(arg).compile()
    compile_s = time.perf_counter() - t
    out = jax.block_until_ready(compiled(arg))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(compiled(arg))
        times.append(time.perf_counter() - t)
    return statistics.median(times), compile_s, jax.tree.map(np.asarray, out)


# --- jaxneuro ---------------------------------------------------------------------------------

def hh_compartments(gnabar, n, use_table=False):
    """jaxneuro's ``hh1``/``pop*`` model: ``n`` HH compartments (L = diam = 20 µm;
    ``n=None``: one, not a population) with sodium conductance ``gnabar`` (S/cm²)."""
    import jaxneuro as jn

    hh = jn.channels.HH(gnabar=gnabar, use_table=use_table)
    return jn.Compartment(length=20.0, diam=20.0, channels=[hh], n=n)


def soma_step():
    """jaxneuro's stimulus of every workload: AMP nA from DELAY ms on."""
    import jaxneuro as jn

    return jn.StepCurrent(AMP, DELAY, 1e9)


def tree_cell(g):
    """jaxneuro's ``tree1k`` cell with per-branch sodium conductances ``g`` (10, S/cm²)."""
    import jaxneuro as jn

    secs = [jn.Cable(length=BRANCH_L, diam=BRANCH_DIAM, Ra=RA, nseg=N_COMP,
                     channels=[jn.channels.HH(gnabar=g[i])], name=f"b{i}") for i in range(N_BRANCH)]
    return jn.Cell(secs, parents=[None if p < 0 else p for p in PARENTS])


def tree_stimulus():
    """jaxneuro's ``tree1k`` stimulus: the step current into the root's first segment."""
    import jaxneuro as jn

    return jn.StepCurrent(AMP, DELAY, 1e9, target=("b0", 0.0))


def jaxneuro_backend(name):
    """The backend ``simulate(backend="auto")`` picks for population workload ``name``
    here (``"xla"``, ``"sharded"`` or ``"pallas"``)."""
    import jaxneuro as jn
    from jaxneuro import backends

    m = hh_compartments(0.12, WORKLOADS[name]["n"])
    return backends.choose("auto", m, jn.StaggeredEuler(), m.init_state(V_INIT), (soma_step(),))


def jaxneuro_run(name, *, backend="auto", use_table=False, grad_checkpoints="saves", tree_solve="hines"):
    import jax
    import jax.numpy as jnp

    import jaxneuro as jn

    w = WORKLOADS[name]
    stim_soma = soma_step()

    def tree_v(g):
        tr = jn.simulate(tree_cell(g), w["t1"], dt=DT, stimuli=[tree_stimulus()], save_every=SAVE,
                         grad_checkpoints=grad_checkpoints,
                         solver=jn.StaggeredEuler(tree_solve=tree_solve))
        return tr.t, tr.v[:, jnp.array([0, N_BRANCH * N_COMP - 1])]

    if name in ("hh1", "pop1k"):
        n = w["n"]

        def fn(g):
            m = hh_compartments(g, None if n == 1 else n, use_table)
            tr = jn.simulate(m, w["t1"], dt=DT, stimuli=[stim_soma], save_every=SAVE, backend=backend)
            return tr.t, tr.v.reshape(tr.v.shape[0], -1)

        arg = jnp.asarray(gnabar_values(n) if n > 1 else 0.12)
    elif name == "tree1k":
        fn, arg = tree_v, jnp.asarray(branch_gnabar())
    elif name == "grad_tree1k":
        fn = jax.grad(lambda g: jnp.mean(tree_v(g)[1][:, 1]))
        arg = jnp.asarray(branch_gnabar())
    elif name.startswith("gpu_pop"):
        n = w["n"]

        def fn(g):
            tr = jn.simulate(hh_compartments(g, n), w["t1"], dt=DT, stimuli=[stim_soma], record=(), backend=backend,
                             summary=jn.SpikeSummary(threshold=0.0, capacity=16))
            return tr.spike_count, tr.spikes

        arg = jnp.asarray(gnabar_values(n))
    else:
        raise ValueError(name)

    run = _jitted_run(fn, arg, lambda out: jax.tree.map(np.asarray, out))
    run.call.__wrapped_fn__ = jax.jit(fn)  # the function of the parameters, for finite differences
    return run


# --- NEURON -----------------------------------------------------------------------------------

def neuron_timed(h, t1, v0, *, dt=DT, repeats=3):
    """Median seconds of ``repeats`` NEURON runs from ``finitialize(v0)`` to ``t1`` (ms)
    after a warm-up, with ``dt`` (ms), ``celsius`` 6.3 (``hh``'s reference) and ``hh``'s
    exact rates (``usetable_hh = 0``, as jaxneuro computes them; NEURON's default is a
    table), for the benchmarks that build their own NEURON models."""
    h.dt = dt
    h.steps_per_ms = 1.0 / dt
    h.celsius = 6.3
    h.usetable_hh = 0

    def once():
        h.finitialize(v0)
        h.continuerun(t1)

    once()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def neuron_run(name, *, tables=True):
    from neuron import h

    h.load_file("stdrun.hoc")
    h("forall delete_section()")
    h.celsius = 6.3
    h.usetable_hh = 1 if tables else 0
    w = WORKLOADS[name]
    keep = []
    if name in ("hh1", "pop1k") or name.startswith("gpu_pop"):
        n = w["n"]
        g = gnabar_values(n) if n > 1 else [0.12]
        probes = []
        for i in range(n):
            s = h.Section(name=f"c{i}")
            s.L = s.diam = 20.0
            s.insert("hh")
            s(0.5).hh.gnabar = g[i]
            c = h.IClamp(s(0.5))
            c.delay, c.dur, c.amp = DELAY, 1e9, AMP
            keep += [s, c]
            probes.append(s(0.5))
    elif name in ("tree1k", "grad_tree1k"):
        secs = []
        for i, p in enumerate(PARENTS):
            s = h.Section(name=f"b{i}")
            s.L, s.diam, s.Ra, s.nseg = BRANCH_L, BRANCH_DIAM, RA, N_COMP
            s.insert("hh")
            for seg in s:
                seg.hh.gnabar = branch_gnabar()[i]
            if p >= 0:
                s.connect(secs[p](1.0), 0.0)
            secs.append(s)
        c = h.IClamp(secs[0](0.5 / N_COMP))
        c.delay, c.dur, c.amp = DELAY, 1e9, AMP
        keep += secs + [c]
        probes = [secs[0](0.5 / N_COMP), secs[-1](1 - 0.5 / N_COMP)]
    else:
        raise ValueError(name)
    record = not name.startswith("gpu_pop")
    vecs = [h.Vector().record(p._ref_v, SAVE) for p in probes] if record else []
    tvec = h.Vector().record(h._ref_t, SAVE) if record else None
    spikes = []
    if not record:
        for p in probes:
            nc = h.NetCon(p._ref_v, None, sec=p.sec)
            nc.threshold = 0.0
            sv = h.Vector()
            nc.record(sv)
            spikes.append(sv)
            keep.append(nc)

    def call():
        try:
            keep[0].name()
        except ReferenceError:
            # Another model's build deleted this one's sections; running on would time
            # and return that model instead.
            raise RuntimeError(f"neuron_run({name!r}, tables={tables}): this NEURON model was deleted by a later "
                               "neuron_run (NEURON simulates every section there is, one model at a time); "
                               "build it again") from None
        h.celsius = 6.3
        h.usetable_hh = 1 if tables else 0
        h.dt = DT
        h.finitialize(V_INIT)
        h.continuerun(w["t1"])
        if not record:
            return np.array([len(s) for s in spikes]), None
        return np.array(tvec), np.stack([np.array(v) for v in vecs], axis=1)

    def set_branch_gnabar(g):
        for i, s in enumerate(keep[:N_BRANCH]):
            for seg in s:
                seg.hh.gnabar = g[i]

    call.keep = keep  # noqa: B010 (keeps the sections alive with the Run)
    call.set_branch_gnabar = set_branch_gnabar
    return Run(call=call)


def neuron_fd_gradient(component=0, rel=1e-4):
    """Central finite difference of grad_tree1k's loss in NEURON (exact rates), for one
    branch's gnabar: an independent check of the automatic gradients."""
    run = neuron_run("tree1k", tables=False)
    g0 = branch_gnabar()
    vals = []
    for sign in (1, -1):
        g = g0.copy()
        g[component] *= 1 + sign * rel
        run.call.set_branch_gnabar(g)
        t, v = run.call()
        vals.append(np.mean(v[:, 1]))
    return (vals[0] - vals[1]) / (2 * rel * g0[component])


# --- Jaxley -----------------------------------------------------------------------------------

def jaxley_available():
    try:
        import jaxley  # noqa: F401
    except Exception:
        return False
    return True


def jaxley_run(name):
    import jax
    import jax.numpy as jnp
    import jaxley as jx
    from jaxley.channels import HH

    w = WORKLOADS[name]
    sub = int(round(SAVE / DT))
    t_grid = np.arange(int(round(w["t1"] / SAVE)) + 1) * SAVE

    def on_save_grid(v):
        """Jaxley's traces (the initial state, then every step) on the 0.25 ms grid."""
        return v[..., : len(t_grid) * sub : sub][..., : len(t_grid)]

    if name in ("hh1", "pop1k") or name.startswith("gpu_pop"):
        n = w["n"]
        cell = jx.Cell(jx.Branch(jx.Compartment(), ncomp=1), parents=[-1])
        cell.set("length", 20.0)
        cell.set("radius", 10.0)
        cell.insert(HH())
        cell.set("v", V_INIT)  # Jaxley starts at -70 mV by default; NEURON here at -65
        cell.init_states()
        cell.stimulate(jx.step_current(DELAY, 1e9, AMP, DT, w["t1"]), verbose=False)
        cell.record("v", verbose=False)

        def one(g):
            ps = cell.data_set("HH_gNa", g, None)
            return jx.integrate(cell, param_state=ps, delta_t=DT, t_max=w["t1"])[0]

        if n == 1:
            fn, arg = (lambda g: one(g)[None]), jnp.asarray(0.12)
        else:
            fn, arg = jax.vmap(one), jnp.asarray(gnabar_values(n))
        if name.startswith("gpu_pop"):
            def fn(g, _f=fn):  # spike counts only
                v = _f(g)
                return jnp.sum((v[:, :-1] < 0.0) & (v[:, 1:] >= 0.0), axis=1), None
    else:
        cell = jaxley_tree_cell(w["t1"])
        params = cell.get_parameters()
        for b in range(N_BRANCH):
            params[b]["HH_gNa"] = jnp.asarray([branch_gnabar()[b]])

        def fwd(p):
            return jx.integrate(cell, params=p, delta_t=DT, t_max=w["t1"])

        if name == "tree1k":
            fn = fwd
        else:
            def loss(p):
                # The tip voltage on the 0.25 ms save grid, as jaxneuro and NEURON sample
                # it (Jaxley returns every step; the mean over those is a different loss).
                return jnp.mean(on_save_grid(fwd(p)[1]))

            def fn(p):
                g = jax.grad(loss)(p)
                return jnp.concatenate([x["HH_gNa"] for x in g])
        arg = params

    def convert(out):
        if name == "grad_tree1k":
            return np.asarray(out)
        if name.startswith("gpu_pop"):
            return np.asarray(out[0]), None
        v = np.asarray(out)  # (k, steps + 1 or 2): the initial state, then every step
        v = on_save_grid(v.reshape(-1, v.shape[-1]))
        return t_grid[: v.shape[1]], v.T

    return _jitted_run(fn, arg, convert)


def jaxley_tree_cell(t1):
    """Jaxley's ``tree1k`` cell for a run of ``t1`` ms: stimulated at the root's first
    compartment, recording there and at the tip of branch 9, per-branch gNa trainable."""
    import jaxley as jx
    from jaxley.channels import HH

    cell = jx.Cell(jx.Branch(jx.Compartment(), ncomp=N_COMP), parents=PARENTS)
    cell.set("length", BRANCH_L / N_COMP)
    cell.set("radius", BRANCH_DIAM / 2)
    cell.set("axial_resistivity", RA)
    cell.set("capacitance", 1.0)
    cell.insert(HH())
    cell.set("v", V_INIT)  # Jaxley starts at -70 mV by default; NEURON here at -65
    cell.init_states()
    cell.branch(0).comp(0).stimulate(jx.step_current(DELAY, 1e9, AMP, DT, t1), verbose=False)
    cell.branch(0).comp(0).record("v", verbose=False)
    cell.branch(N_BRANCH - 1).comp(N_COMP - 1).record("v", verbose=False)
    for b in range(N_BRANCH):
        cell.branch(b).make_trainable("HH_gNa", verbose=False)
    return cell


def jaxneuro_fd_gradient(component=0, rel=1e-4):
    """Central finite difference of grad_tree1k's loss with jaxneuro itself."""
    import jax

    run_p = jaxneuro_run("tree1k")
    g0 = branch_gnabar()
    vals = []
    for sign in (1, -1):
        g = g0.copy()
        g[component] *= 1 + sign * rel
        _, v = run_p.call.__wrapped_fn__(jax.numpy.asarray(g))
        vals.append(np.mean(np.asarray(v)[:, 1]))
    return (vals[0] - vals[1]) / (2 * rel * g0[component])
