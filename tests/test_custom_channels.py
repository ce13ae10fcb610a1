"""User-written channels: subclasses that change kinetics are followed on every path
(default solver, diffrax solvers, initial state), against channels written out in full
and against NEURON running the same .mod files; mistakes a channel author makes are
refused with a ValueError when the model is built."""

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import ClassVar

import diffrax
import jax
import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
import saiunit as u

import jaxneuro as jn
from jaxneuro import units
from jaxneuro.channels import AbstractAlphaBetaChannel, AbstractChannel, exprel_ratio

# --- channels -----------------------------------------------------------------------------


def shifted_hh_rates(v):
    """hh.mod's rates with the n gate's shifted +10 mV (hhs.mod below)."""
    r = dict(jn.channels.HH().rates(v))
    r["n"] = (0.01 * exprel_ratio(-(v + 45.0), 10.0), 0.125 * jnp.exp(-(v + 55.0) / 80.0))
    return r


class HHShifted(jn.channels.HH):
    """hh with other rates, by overriding only ``rates``."""

    name: str = eqx.field(default="hhs", static=True)

    def rates(self, v):
        return shifted_hh_rates(v)


class HHShiftedRef(AbstractAlphaBetaChannel):
    """The same channel written out as an alpha/beta channel of its own."""

    name: str = eqx.field(default="hhs", static=True)
    gate_names: ClassVar[tuple[str, ...]] = ("m", "h", "n")

    def rates(self, v):
        return shifted_hh_rates(v)

    def rate_factor(self, temperature):
        return units.q10_factor(3.0, temperature, 6.3)

    def component_currents(self, v, gates):
        return jn.channels.HH().component_currents(v, gates)

    def current(self, v, gates):
        return jn.channels.HH().current(v, gates)



def test_a_channels_methods_called_on_values_compile_one_program_each():
    # Called on values (a notebook plotting a channel's curves), rates(v) and what is
    # derived from it ran op by op: each jax.numpy operation on a new shape compiled a
    # program of its own (INa_Ba2002's rates 12, gate_inf_tau 20 more, ~1 s). Now one
    # program per method, channel structure and shapes, which a new value or another
    # channel of the class reuses; the values are the method's as written, and a
    # user's channel (here one overriding rates) gets the same.
    from test_simulate import _CountCompiles

    v0 = np.linspace(-90.0, 30.0, 13) + 0.37
    for channel in (jn.channels.INa_Ba2002(), HHShifted()):
        as_written = lambda m: getattr(m, "__wrapped__", m)  # noqa: E731
        gates = as_written(type(channel).steady_state)(channel, v0, 6.3)
        half = {g: 0.5 * x for g, x in gates.items()}
        calls = {
            "rates": lambda m, c, v: m(c, v),
            "gate_inf_tau": lambda m, c, v: m(c, v, 6.3),
            "steady_state": lambda m, c, v: m(c, v, 6.3),
            "derivative": lambda m, c, v: m(c, v, half, 6.3),
            "current": lambda m, c, v: m(c, v, gates),
        }
        other = eqx.tree_at(lambda c: c.g_max if hasattr(c, "g_max") else c.gnabar, channel, 0.5)
        for name, call in calls.items():
            method = getattr(type(channel), name)
            with _CountCompiles() as first:
                got = call(method, channel, v0)
            assert first.count <= 1, (type(channel).__name__, name, first.messages)
            expected = call(as_written(method), channel, v0)  # op by op
            for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
                np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-14, atol=0)
            # Another value of a parameter, or of v: the same program.
            with _CountCompiles() as again:
                call(method, other, v0)
                call(method, channel, v0 + 1.0)
            assert again.count == 0, (type(channel).__name__, name, again.messages)
    # Inside a trace (the simulation's loop, grad) the methods run as written.
    g = jax.grad(lambda x: jnp.sum(HHShifted().rates(x)["n"][0]))(jnp.asarray(v0))
    assert np.all(np.isfinite(np.asarray(g))) and np.all(np.asarray(g) != 0)

def kdr_alpha_beta(v):
    return 0.032 * exprel_ratio(-(v + 52.0), 5.0), 0.5 * jnp.exp(-(v + 57.0) / 40.0)


class _KdrMembrane(AbstractAlphaBetaChannel):
    """kdrf.mod's parameters, temperature factor and current; no kinetics of its own
    (rate_factor is not one), so each subclass below defines them."""

    g_max: object = units.param(units.S_per_cm2, default=0.01, check="nonnegative")
    ek: object = units.param(units.mV, default=-90.0)
    name: str = eqx.field(default="kdrf", static=True)
    gate_names: ClassVar[tuple[str, ...]] = ("n",)

    def rate_factor(self, temperature):
        return units.q10_factor(3.0, temperature, 6.3)

    def current(self, v, gates):
        return self.g_max * gates["n"] ** 4 * (v - self.ek)


class Kdr(_KdrMembrane):
    """A Traub-Miles delayed rectifier (kdrf.mod without its floor on tau)."""

    def rates(self, v):
        return {"n": kdr_alpha_beta(v)}


class KdrFloor(Kdr):
    """kdrf.mod: ``if (ntau < tmin) {ntau = tmin}``, by overriding ``gate_inf_tau``."""

    tmin: object = units.param(units.ms, default=2.0)

    def gate_inf_tau(self, v, temperature):
        out = super().gate_inf_tau(v, temperature)
        return {g: (inf, jnp.maximum(tau, self.tmin)) for g, (inf, tau) in out.items()}


class KdrFloorOneClass(_KdrMembrane):
    """The same, with rates and the floor in one class."""

    def rates(self, v):
        return {"n": kdr_alpha_beta(v)}

    def gate_inf_tau(self, v, temperature):
        return {g: (inf, jnp.maximum(tau, 2.0)) for g, (inf, tau) in super().gate_inf_tau(v, temperature).items()}


class KdrFloorRef(AbstractChannel):
    """The same kinetics written out as an inf/tau channel."""

    g_max: object = units.param(units.S_per_cm2, default=0.01)
    name: str = eqx.field(default="kdrf", static=True)
    gate_names: ClassVar[tuple[str, ...]] = ("n",)

    def gate_inf_tau(self, v, temperature):
        a, b = kdr_alpha_beta(v)
        phi = 3.0 ** ((temperature - 6.3) / 10.0)
        return {"n": (a / (a + b), jnp.maximum(1.0 / (phi * (a + b)), 2.0))}

    def current(self, v, gates):
        return self.g_max * gates["n"] ** 4 * (v + 90.0)


STIM = jn.StepCurrent(amp=0.2, delay=5, dur=40)


def soma(*channels, temperature=20.0):
    return jn.Compartment(length=20, diam=20, channels=list(channels), temperature=temperature)


def traces(comp, *, solver=None, t1=50.0, stim=STIM):
    kw = {} if solver is None else dict(solver=solver)
    gates = tuple(g for g in comp.observables() if g[:2] in ("m_", "h_", "n_"))
    return jn.simulate(comp, t1, stimuli=[stim], record=("v",) + gates, **kw)


# --- 1. HH subclass overriding rates -----------------------------------------------------


@pytest.mark.parametrize("solver", [None, diffrax.Tsit5()], ids=["staggered", "tsit5"])
def test_hh_subclass_overriding_rates_follows_them_everywhere(solver):
    """Initial gates, the default solver's steps and a diffrax solver's derivative all
    come from the overridden rates (before: steps with hh.mod's rates, 110 mV off)."""
    stim = jn.StepCurrent(amp=0.1, delay=5, dur=40)
    t1 = 50.0 if solver is None else 20.0
    ours = traces(soma(HHShifted(), temperature=6.3), solver=solver, t1=t1, stim=stim)
    ref = traces(soma(HHShiftedRef(), temperature=6.3), solver=solver, t1=t1, stim=stim)
    assert float(ref.v.max()) > 0  # it spikes
    for name in ("v", "m_hhs", "h_hhs", "n_hhs"):
        np.testing.assert_allclose(np.asarray(getattr(ours, name)), np.asarray(getattr(ref, name)), rtol=0, atol=1e-9)


def test_hh_subclass_methods_agree_with_its_rates():
    ch, ref = HHShifted(), HHShiftedRef()
    v = jnp.linspace(-120.0, 60.0, 37)
    for g in ("m", "h", "n"):
        inf, rate = ch.gate_inf_rate(v, 20.0)[g]
        inf_ref, tau_ref = ref.gate_inf_tau(v, 20.0)[g]
        np.testing.assert_allclose(inf, inf_ref, rtol=1e-13)
        np.testing.assert_allclose(rate, 1.0 / tau_ref, rtol=1e-13)
        np.testing.assert_allclose(ch.gate_inf_tau(v, 20.0)[g][1], tau_ref, rtol=1e-13)
        np.testing.assert_allclose(ch.steady_state(v, 20.0)[g], inf_ref, rtol=1e-13)


def test_hh_subclass_overriding_rates_refuses_the_table():
    with pytest.raises(ValueError, match=r"HHShifted\(use_table=True\).*overrides rates"):
        HHShifted(use_table=True)


def test_hh_and_subclasses_not_touching_kinetics_keep_the_fast_path():
    class HHLabelled(jn.channels.HH):
        name: str = eqx.field(default="hh2", static=True)

    for cls in (jn.channels.HH, HHLabelled):
        assert cls.gate_inf_rate is jn.channels.HH.gate_inf_rate
        assert cls.derivative is jn.channels.HH.derivative
        assert cls.steady_state is jn.channels.HH.steady_state
    assert HHShifted.gate_inf_rate is not jn.channels.HH.gate_inf_rate


def test_hh_subclass_with_a_tau_floor_keeps_the_table():
    """Overriding gate_inf_tau (not rates) of HH works with the table too."""

    class HHFloor(jn.channels.HH):
        def gate_inf_tau(self, v, temperature):
            out = super().gate_inf_tau(v, temperature)
            return {g: (inf, jnp.maximum(tau, 1.0)) for g, (inf, tau) in out.items()}

    v = jnp.linspace(-90.0, 40.0, 27)
    for use_table in (False, True):
        ch, plain = HHFloor(use_table=use_table), jn.channels.HH(use_table=use_table)
        for g in ("m", "h", "n"):
            inf, tau = plain.gate_inf_tau(v, 6.3)[g]
            got_inf, rate = ch.gate_inf_rate(v, 6.3)[g]
            np.testing.assert_allclose(got_inf, inf, rtol=1e-13)
            np.testing.assert_allclose(rate, 1.0 / np.maximum(tau, 1.0), rtol=1e-13)
        assert float(jnp.min(plain.gate_inf_tau(v, 6.3)["m"][1])) < 1.0  # the floor acts


# --- 2. alpha/beta subclass overriding gate_inf_tau --------------------------------------


@pytest.mark.parametrize("cls", [KdrFloor, KdrFloorOneClass])
def test_tau_floor_override_is_used_by_every_method(cls):
    ch = cls()
    v = jnp.linspace(-100.0, 50.0, 31)
    inf, tau = ch.gate_inf_tau(v, 20.0)["n"]
    assert float(tau.min()) == 2.0 and float(Kdr().gate_inf_tau(v, 20.0)["n"][1].min()) < 1.0
    inf_r, rate = ch.gate_inf_rate(v, 20.0)["n"]
    np.testing.assert_allclose(inf_r, inf, rtol=1e-14)
    np.testing.assert_allclose(rate, 1.0 / tau, rtol=1e-14)
    np.testing.assert_allclose(ch.steady_state(v, 20.0)["n"], inf, rtol=1e-14)
    np.testing.assert_allclose(ch.derivative(v, {"n": 0.3}, 20.0)["n"], (inf - 0.3) / tau, rtol=1e-13)


@pytest.mark.parametrize("cls", [KdrFloor, KdrFloorOneClass])
@pytest.mark.parametrize("solver", [None, diffrax.Tsit5()], ids=["staggered", "tsit5"])
def test_tau_floor_override_matches_the_channel_written_out(cls, solver):
    """(before: the default solver and diffrax used the rates without the floor, 56 mV
    off NEURON's kdrf.mod.)"""
    t1 = 50.0 if solver is None else 20.0
    na = jn.channels.HH(gkbar=0.0)
    ours = traces(soma(na, cls()), solver=solver, t1=t1)
    ref = traces(soma(na, KdrFloorRef()), solver=solver, t1=t1)
    assert float(ref.v.max()) > 0
    np.testing.assert_allclose(np.asarray(ours.v), np.asarray(ref.v), rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.asarray(ours.n_kdrf), np.asarray(ref.n_kdrf), rtol=0, atol=1e-12)


# --- 1 and 2 against NEURON ---------------------------------------------------------------

HHS_MOD = """
NEURON { SUFFIX hhs USEION na READ ena WRITE ina USEION k READ ek WRITE ik
    NONSPECIFIC_CURRENT il RANGE gnabar, gkbar, gl, el }
UNITS { (mA) = (milliamp) (mV) = (millivolt) (S) = (siemens) }
PARAMETER { gnabar = .12 (S/cm2) gkbar = .036 (S/cm2) gl = .0003 (S/cm2) el = -54.3 (mV) }
STATE { m h n }
ASSIGNED { v (mV) celsius (degC) ena (mV) ek (mV) ina (mA/cm2) ik (mA/cm2) il (mA/cm2)
    minf hinf ninf mtau (ms) htau (ms) ntau (ms) }
BREAKPOINT { SOLVE states METHOD cnexp
    ina = gnabar*m*m*m*h*(v - ena) ik = gkbar*n*n*n*n*(v - ek) il = gl*(v - el) }
INITIAL { rates(v) m = minf h = hinf n = ninf }
DERIVATIVE states { rates(v) m' = (minf-m)/mtau h' = (hinf-h)/htau n' = (ninf-n)/ntau }
PROCEDURE rates(v (mV)) { LOCAL alpha, beta, sum, q10
    UNITSOFF
    q10 = 3^((celsius - 6.3)/10)
    alpha = .1 * vtrap(-(v+40),10) beta = 4 * exp(-(v+65)/18)
    sum = alpha + beta mtau = 1/(q10*sum) minf = alpha/sum
    alpha = .07 * exp(-(v+65)/20) beta = 1 / (exp(-(v+35)/10) + 1)
    sum = alpha + beta htau = 1/(q10*sum) hinf = alpha/sum
    alpha = .01*vtrap(-(v+45),10) beta = .125*exp(-(v+55)/80)
    sum = alpha + beta ntau = 1/(q10*sum) ninf = alpha/sum
    UNITSON }
FUNCTION vtrap(x,y) { if (fabs(x/y) < 1e-6) { vtrap = y*(1 - x/y/2) } else { vtrap = x/(exp(x/y) - 1) } }
"""

KDRF_MOD = """
NEURON { SUFFIX kdrf NONSPECIFIC_CURRENT i RANGE gbar, ek }
UNITS { (mA) = (milliamp) (mV) = (millivolt) (S) = (siemens) }
PARAMETER { gbar = 0.01 (S/cm2) ek = -90 (mV) tmin = 2 (ms) }
ASSIGNED { v (mV) celsius (degC) i (mA/cm2) ninf ntau (ms) }
STATE { n }
BREAKPOINT { SOLVE states METHOD cnexp i = gbar*n*n*n*n*(v - ek) }
INITIAL { rates(v) n = ninf }
DERIVATIVE states { rates(v) n' = (ninf - n)/ntau }
PROCEDURE rates(v (mV)) { LOCAL a, b, phi
    UNITSOFF
    phi = 3^((celsius - 6.3)/10)
    a = 0.032*vtrap(-(v + 52), 5) b = 0.5*exp(-(v + 57)/40)
    ninf = a/(a + b) ntau = 1/(phi*(a + b))
    if (ntau < tmin) { ntau = tmin }
    UNITSON }
FUNCTION vtrap(x, y) { if (fabs(x/y) < 1e-6) { vtrap = y*(1 - x/y/2) } else { vtrap = x/(exp(x/y) - 1) } }
"""

# Pinsky & Rinzel (1994) as NMODL: the soma's gates by cnexp, the dendrite's coupled
# gates and calcium pool by derivimplicit (the usual ModelDB form).
PRSOMA_MOD = """
NEURON { SUFFIX prsoma NONSPECIFIC_CURRENT i }
UNITS { (mA) = (milliamp) (mV) = (millivolt) (S) = (siemens) }
ASSIGNED { v (mV) i (mA/cm2) }
STATE { h n }
BREAKPOINT { SOLVE states METHOD cnexp i = 0.03*minf(v)^2*h*(v-120) + 0.015*n*(v+15) }
INITIAL { h = ah(v)/(ah(v)+bh(v)) n = an(v)/(an(v)+bn(v)) }
DERIVATIVE states { h' = ah(v)*(1-h) - bh(v)*h n' = an(v)*(1-n) - bn(v)*n }
FUNCTION minf(v) { LOCAL am, bm
    am = 0.32*(13.1-v)/(exp((13.1-v)/4)-1) bm = 0.28*(v-40.1)/(exp((v-40.1)/5)-1) minf = am/(am+bm) }
FUNCTION ah(v) { ah = 0.128*exp((17-v)/18) }
FUNCTION bh(v) { bh = 4/(1+exp((40-v)/5)) }
FUNCTION an(v) { an = 0.016*(35.1-v)/(exp((35.1-v)/5)-1) }
FUNCTION bn(v) { bn = 0.25*exp(0.5-0.025*v) }
"""

PRDEND_MOD = """
NEURON { SUFFIX prdend NONSPECIFIC_CURRENT i }
UNITS { (mA) = (milliamp) (mV) = (millivolt) (S) = (siemens) }
ASSIGNED { v (mV) i (mA/cm2) ica }
STATE { s c q ca }
BREAKPOINT { SOLVE states METHOD derivimplicit
    i = 0.01*s*s*(v-140) + 0.0008*q*(v+15) + 0.015*c*chi(ca)*(v+15) }
INITIAL { s = as(v)/(as(v)+bs(v)) c = ac(v)/(ac(v)+bc(v)) ca = -0.13*10*s*s*(v-140)/0.075
    q = aq(ca)/(aq(ca)+0.001) }
DERIVATIVE states { ica = 10*s*s*(v-140)
    s' = as(v)*(1-s) - bs(v)*s c' = ac(v)*(1-c) - bc(v)*c q' = aq(ca)*(1-q) - 0.001*q ca' = -0.13*ica - 0.075*ca }
FUNCTION as(v) { as = 1.6/(1+exp(-0.072*(v-65))) }
FUNCTION bs(v) { bs = 0.02*(v-51.1)/(exp((v-51.1)/5)-1) }
FUNCTION ac(v) { if (v <= 50) { ac = exp((v-10)/11 - (v-6.5)/27)/18.975 } else { ac = 2*exp((6.5-v)/27) } }
FUNCTION bc(v) { if (v <= 50) { bc = 2*exp((6.5-v)/27) - ac(v) } else { bc = 0 } }
FUNCTION aq(ca) { if (0.00002*ca < 0.01) { aq = 0.00002*ca } else { aq = 0.01 } }
FUNCTION chi(ca) { if (ca/250 < 1) { chi = ca/250 } else { chi = 1 } }
"""

NEURON_SCRIPT = """
import sys
import numpy as np
from neuron import h
h.nrn_load_dll(sys.argv[1])
h.load_file("stdrun.hoc")
h.usetable_hh = 0

def run(celsius, amp, mechs, refs):
    h.celsius = celsius
    s = h.Section(name="soma"); s.L = 20; s.diam = 20
    for m in mechs:
        s.insert(m)
    if "hh" in mechs:
        s(0.5).hh.gkbar = 0
    st = h.IClamp(s(0.5)); st.delay = 5; st.dur = 40; st.amp = amp
    vecs = [h.Vector().record(r(s(0.5))) for r in refs]
    h.dt = 0.025; h.finitialize(-65); h.continuerun(50)
    return np.array([np.array(x) for x in vecs]).T

hhs = run(6.3, 0.1, ["hhs"], [lambda x: x._ref_v, lambda x: x._ref_n_hhs])
kdrf = run(20.0, 0.2, ["hh", "kdrf"], [lambda x: x._ref_v, lambda x: x._ref_n_kdrf])

# Pinsky-Rinzel: two 10 um compartments, Ra giving gc/p = 4.2 mS/cm2 between them.
soma, dend = h.Section(name="prs"), h.Section(name="prd")
for sec, mech in ((soma, "prsoma"), (dend, "prdend")):
    sec.L = sec.diam = 10.0
    sec.cm, sec.Ra = 3.0, 10e-4 / (8 * (10e-4) ** 2 * 2.1e-3)
    sec.insert("pas")
    sec.g_pas, sec.e_pas = 1e-4, 0.0
    sec.insert(mech)
dend.connect(soma(1), 0)
st = h.IClamp(soma(0.5)); st.delay = 0; st.dur = 1e9; st.amp = 0.75e-3 * (2 * np.pi * 100e-8) * 1e6
vec = h.Vector().record(soma(0.5)._ref_v)
h.dt = 0.025; h.finitialize(-4.6); h.continuerun(120)
np.savez(sys.argv[2], hhs=hhs, kdrf=kdrf, pinsky_rinzel=np.array(vec))
"""


@pytest.fixture(scope="module")
def neuron_runs(tmp_path_factory):
    """NEURON running hhs.mod, kdrf.mod and Pinsky & Rinzel's prsoma.mod/prdend.mod,
    compiled here with nrnivmodl (in its own process); skipped where NEURON, nrnivmodl
    or a C compiler is missing."""
    pytest.importorskip("neuron")
    nrnivmodl = shutil.which("nrnivmodl") or str(Path(sys.executable).with_name("nrnivmodl"))
    if not Path(nrnivmodl).exists():
        pytest.skip("nrnivmodl not found")
    if not (shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")):
        pytest.skip("no C compiler for nrnivmodl")
    d = tmp_path_factory.mktemp("mod")
    (d / "hhs.mod").write_text(HHS_MOD)
    (d / "kdrf.mod").write_text(KDRF_MOD)
    (d / "prsoma.mod").write_text(PRSOMA_MOD)
    (d / "prdend.mod").write_text(PRDEND_MOD)
    try:
        subprocess.run([nrnivmodl], cwd=d, check=True, capture_output=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        pytest.skip(f"nrnivmodl failed: {e}")
    libs = sorted(d.glob("*/libnrnmech.so")) + sorted(d.glob("*/.libs/libnrnmech.so"))
    if not libs:
        pytest.skip("nrnivmodl made no libnrnmech.so")
    run_dir = d / "run"  # not d: NEURON loads the mechanisms of its working directory itself
    run_dir.mkdir()
    script = run_dir / "run.py"
    script.write_text(textwrap.dedent(NEURON_SCRIPT))
    subprocess.run([sys.executable, str(script), str(libs[0]), str(d / "out.npz")],
                   cwd=run_dir, check=True, timeout=300)
    return np.load(d / "out.npz")


def test_hh_subclass_overriding_rates_matches_neuron(neuron_runs):
    stim = jn.StepCurrent(amp=0.1, delay=5, dur=40)
    tr = traces(soma(HHShifted(), temperature=6.3), stim=stim)
    ref = neuron_runs["hhs"]
    assert ref[:, 0].max() > 0
    np.testing.assert_allclose(np.asarray(tr.v), ref[:, 0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(tr.n_hhs), ref[:, 1], rtol=0, atol=1e-8)


def test_tau_floor_override_matches_neuron(neuron_runs):
    tr = traces(soma(jn.channels.HH(gkbar=0.0), KdrFloor()))
    ref = neuron_runs["kdrf"]
    assert ref[:, 0].max() > 0
    np.testing.assert_allclose(np.asarray(tr.v), ref[:, 0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(tr.n_kdrf), ref[:, 1], rtol=0, atol=1e-8)


# --- 3. units of channel parameters -------------------------------------------------------


class LeakMS(AbstractChannel):
    """A conductance declared in mS/cm², as a .mod file may: held in mS/cm²."""

    g: object = units.param(u.mS / u.cm**2, default=0.1)
    name: str = eqx.field(default="leakms", static=True)

    def current(self, v, gates):
        return 1e-3 * self.g * (v + 70.0)  # mS/cm² · mV = µA/cm²; the channel converts


def test_parameters_hold_their_declared_unit():
    assert float(LeakMS().g) == 0.1
    assert float(LeakMS(g=1e-4 * u.siemens / u.cm**2).g) == pytest.approx(0.1)
    assert float(jn.channels.Leak(g=0.1 * u.mS / u.cm**2).g) == pytest.approx(1e-4)
    stim = jn.StepCurrent(amp=1.0, delay=10, dur=100)
    ours = jn.simulate(jn.Compartment(length=100, diam=500, channels=[LeakMS()]), 100, stimuli=[stim], v0=-70)
    pas = jn.simulate(jn.Compartment(length=100, diam=500, channels=[jn.channels.Leak(g=1e-4)]), 100,
                      stimuli=[stim], v0=-70)
    np.testing.assert_allclose(np.asarray(ours.v), np.asarray(pas.v), rtol=0, atol=1e-9)


def test_a_quantity_in_an_undeclared_field_is_refused():
    """(before: a saiunit UnitMismatchError from inside the solver.)"""

    class KdrPlain(Kdr):
        g_plain: object = 0.01

        def current(self, v, gates):
            return self.g_plain * gates["n"] ** 4 * (v - self.ek)

    with pytest.raises(ValueError, match=r"KdrPlain\.g_plain holds a saiunit quantity.*units\.param"):
        soma(KdrPlain(g_plain=10 * u.mS / u.cm**2))


def test_a_gateless_channel_needs_only_a_current():
    """(before: NotImplementedError from steady_state.)"""
    tr = jn.simulate(jn.Compartment(length=100, diam=500, channels=[LeakMS()]), 1.0, v0=-65)
    assert float(tr.v[-1]) < -65.0


# --- 4. errors for channel authors --------------------------------------------------------


class KA(AbstractChannel):
    """A two-gate inf/tau channel."""

    name: str = eqx.field(default="ka", static=True)
    gate_names: ClassVar[tuple[str, ...]] = ("a", "b")

    def gate_inf_tau(self, v, temperature):
        s = 1.0 / (1.0 + jnp.exp(-(v + 50.0) / 10.0))
        return {"a": (s, 1.0 + 0 * v), "b": (1.0 - s, 5.0 + 0 * v)}

    def current(self, v, gates):
        return 0.01 * gates["a"] ** 3 * gates["b"] * (v + 80.0)


@pytest.mark.parametrize("names", [(), ("m", "h"), ("a", "b", "c")])
@pytest.mark.parametrize("build", ["compartment", "cable"])
def test_gate_names_not_matching_the_kinetics(names, build):
    """(before: KeyError 'a' or 'm_ka' at simulate time.)"""

    class KAWrong(KA):
        gate_names: ClassVar[tuple[str, ...]] = names

    pattern = rf"KAWrong\.gate_names is {re.escape(repr(names))}, but its gate_inf_tau returns gates \('a', 'b'\)"
    with pytest.raises(ValueError, match=pattern):
        if build == "compartment":
            jn.Compartment(length=20, diam=20, channels=[KAWrong()])
        else:
            jn.Cable(length=100, diam=2, nseg=3, channels=[KAWrong()])


def test_current_reading_an_unknown_gate():
    class KABad(KA):
        def current(self, v, gates):
            return 0.01 * gates["c"] * (v + 80.0)

    with pytest.raises(ValueError, match=r"KABad\.current reads gate 'c'.*gate_names \('a', 'b'\)"):
        soma(KABad())


def test_alpha_beta_channel_without_rate_factor():
    """(before: a bare NotImplementedError at simulate time.)"""

    class KdrNoPhi(AbstractAlphaBetaChannel):
        name: str = eqx.field(default="kdr", static=True)
        gate_names: ClassVar[tuple[str, ...]] = ("n",)

        def rates(self, v):
            return {"n": kdr_alpha_beta(v)}

        def current(self, v, gates):
            return 0.01 * gates["n"] ** 4 * (v + 90.0)

    with pytest.raises(ValueError, match=r"KdrNoPhi .*defines rates\(\) but not rate_factor"):
        KdrNoPhi()


def test_channel_with_gates_but_no_kinetics():
    class NoKinetics(AbstractChannel):
        name: str = eqx.field(default="nk", static=True)
        gate_names: ClassVar[tuple[str, ...]] = ("x",)

        def current(self, v, gates):
            return gates["x"] * v

    with pytest.raises(ValueError, match=r"NoKinetics has gates \('x',\) but no kinetics.*gate_inf_tau"):
        NoKinetics()


def test_population_parameter_of_the_wrong_length():
    """(before: a JAX TypeError at simulate time.)"""
    with pytest.raises(ValueError, match=r"channels\[0\] \(Kdr 'kdrf'\) parameter g_max has shape \(3,\); "
                                         r"with n=4 .* shape \(4,\)"):
        jn.Compartment(n=4, length=20, diam=20, channels=[Kdr(g_max=jnp.full(3, 0.01))])
    with pytest.raises(ValueError, match=r"do not broadcast together .*Kdr 'kdrf'\) parameter g_max: \(3,\)"):
        jn.Compartment(length=20, diam=20, channels=[Kdr(g_max=jnp.full(3, 0.01)), KA(), jn.channels.Leak(g=jnp.full(4, 1e-4))])
    pop = jn.Compartment(n=4, length=20, diam=20, channels=[Kdr(g_max=jnp.full(4, 0.01))])
    assert jn.simulate(pop, 1.0).v.shape[-1] == 4


def test_repeated_gate_names_and_kinetics_of_the_wrong_kind_are_named():
    class KATwice(KA):
        gate_names: ClassVar[tuple[str, ...]] = ("a", "a")

    with pytest.raises(ValueError, match=r"KATwice\.gate_names must name each gate once, \['a'\] repeat"):
        KATwice()

    class KATuple(KA):
        def gate_inf_tau(self, v, temperature):  # a tuple where a dict belongs
            return tuple(super().gate_inf_tau(v, temperature).items())

    with pytest.raises(ValueError, match=r"KATuple\.steady_state \(from its gate_inf_tau\) failed at v = 0 mV: "
                                         r"AttributeError.*return a dict \{gate: value\}"):
        soma(KATuple())


@pytest.mark.parametrize("build", ["compartment", "cable"])
def test_kinetics_or_current_of_the_wrong_shape_are_named(build):
    """A value with an axis the parameters do not have is refused when the model is
    built, naming the channel and the method (before: a bare broadcasting error inside
    the solver at simulate time); one per compartment is fine."""
    class KAWide(KA):
        def gate_inf_tau(self, v, temperature):
            out = super().gate_inf_tau(v, temperature)
            return {**out, "b": (out["b"][0] * jnp.ones(2), out["b"][1])}

    class KACurrent(KA):
        def current(self, v, gates):
            return jnp.ones(3) * super().current(v, gates)

    def build_with(ch):
        if build == "compartment":
            return jn.Compartment(length=20, diam=20, channels=[ch])
        return jn.Cable(length=100, diam=2, nseg=3, channels=[ch])

    with pytest.raises(ValueError, match=r"KAWide\.steady_state \(from its gate_inf_tau\) returns out\['b'\] of "
                                         r"shape \(2,\) at a scalar voltage; .*parameters \(\)"):
        build_with(KAWide())
    with pytest.raises(ValueError, match=r"KACurrent\.current returns a value of shape \(3,\)"):
        build_with(KACurrent())
    # The same value per compartment (parameters of shape (3,)) is what a population has.
    pop = jn.Compartment(n=3, length=20, diam=20, channels=[Kdr(g_max=jnp.full(3, 0.01))])
    assert jn.simulate(pop, 1.0).v.shape[-1] == 3


def test_a_zero_tau_of_either_sign_is_an_instantaneous_gate():
    """``0.0 * v`` is -0.0 for negative v: its reciprocal, -inf, made the gate grow by
    e**50 per step (1.5e20 after one); a zero tau is an instantaneous gate whatever
    its sign, the gate at its steady state at every step."""

    class Instant(KA):
        def gate_inf_tau(self, v, temperature):
            inf = super().gate_inf_tau(v, temperature)
            return {"a": (inf["a"][0], 0.0 * v), "b": inf["b"]}

    trace = jn.simulate(soma(Instant()), 5.0, record=("v", "a_ka"), v0=-70.0)
    v, a = np.asarray(trace.v), np.asarray(trace.a_ka)
    np.testing.assert_allclose(a[1:], 1.0 / (1.0 + np.exp(-(v[1:] + 50.0) / 10.0)), rtol=1e-6)


def test_a_zero_tau_under_a_diffrax_solver_is_named():
    """diffrax's solvers integrate dx/dt = (inf - x)/tau, infinite at tau = 0: Tsit5 ran
    out of steps blaming stiffness, Euler returned NaN blaming its step; both now name
    the gate whose rate is not finite and say why."""

    class Instant(KA):
        name: str = eqx.field(default="kai", static=True, kw_only=True)

        def gate_inf_tau(self, v, temperature):
            inf = super().gate_inf_tau(v, temperature)
            return {"a": (inf["a"][0], 0.0 * v), "b": inf["b"]}

    cell = soma(Instant())
    assert np.all(np.isfinite(jn.simulate(cell, 1.0).v))  # the default solver takes it
    with pytest.raises(RuntimeError, match=r"Tsit5 took more than max_steps=200 .*rate of change of 'a_kai' is not "
                                           r"finite at the start .*tau = 0.*need tau > 0"):
        jn.simulate(cell, 1.0, solver=diffrax.Tsit5(), max_steps=200,
                    stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6))
    with pytest.warns(RuntimeWarning, match=r"diverged .*rate of change of 'a_kai' is not finite .*tau = 0"):
        jn.simulate(cell, 1.0, solver=diffrax.Euler())


def test_a_channel_name_must_be_an_identifier():
    # "my chan" was accepted, its current recorded as "i_my chan".
    with pytest.raises(ValueError, match=r"channels\[0\]: KA\.name expects an identifier .*got 'my chan'"):
        soma(KA(name="my chan"))


def test_a_current_missing_its_gates_argument_is_named_as_a_current():
    # The message said "(from its current)" and gave the kinetics' dict hint.
    class NoGates(AbstractChannel):
        g: object = units.param(units.S_per_cm2, default=1e-3)
        name: str = eqx.field(default="nogates", static=True, kw_only=True)

        def current(self, v):
            return self.g * v

    with pytest.raises(ValueError, match=r"NoGates\.current\(v, gates\) failed at v = 0 mV: TypeError.*"
                                         r"returns one array") as error:
        jn.Compartment(area=1000.0, channels=[NoGates()])
    assert "Kinetics return a dict" not in str(error.value)


def test_a_current_that_is_not_one_array_is_named():
    # A dict of currents (as component_currents returns) failed deep inside the run:
    # "unsupported operand type(s) for +: 'DynamicJaxprTracer' and 'dict'".
    class ByIon(AbstractChannel):
        g: object = units.param(units.S_per_cm2, default=1e-3)
        name: str = eqx.field(default="byion", static=True, kw_only=True)

        def current(self, v, gates):
            return {"ik": self.g * (v + 80.0), "ina": self.g * (v - 50.0)}

    with pytest.raises(ValueError, match=r"channels\[0\]: ByIon\.current must return one array.*got a dict "
                                         r"with keys \('ik', 'ina'\).*component_currents"):
        jn.Compartment(area=1000.0, channels=[ByIon()])


def test_a_name_declared_before_the_parameters_gets_a_hint_naming_the_first_parameter():
    # A channel declaring `name: str = "p"` first (not kw_only) took P(2e-3) as its name;
    # the refusal hinted "e.g. P(name=...)", the field that went wrong, not P(g=...).
    class P(AbstractChannel):
        name: str = "p"
        g: object = units.param(units.S_per_cm2, default=1e-3)

        def current(self, v, gates):
            return self.g * v

    with pytest.raises(ValueError, match=r"P\.name expects a non-empty string .* got 0\.002; give parameters "
                                         r"by keyword, e\.g\. P\(g=\.\.\.\)"):
        P(2e-3)
    assert float(P(g=2e-3).g) == 2e-3 and P(g=2e-3).name == "p"


def test_a_channel_without_a_name_is_told_how_to_declare_one():
    # It failed when called, with dataclasses' "missing 1 required positional argument:
    # 'name'" (the abstract name had become a required first field).
    with pytest.raises(TypeError, match=r"NoName declares no name: .*name: str = eqx\.field\(default=\"\.\.\.\", "
                                        r"static=True, kw_only=True\)"):
        class NoName(AbstractChannel):
            g: object = units.param(units.S_per_cm2, default=1e-3)

            def current(self, v, gates):
                return self.g * v

    class AbstractKBase(AbstractChannel):  # a base class of channels may leave it to them
        def current(self, v, gates):
            return 1e-3 * v

    class K(AbstractKBase):
        name: str = eqx.field(default="k", static=True, kw_only=True)

    assert jn.simulate(jn.Compartment(area=1000.0, channels=[K()]), 1.0).v.shape == (41,)


# --- 5. gates whose rates depend on each other (a calcium pool) ---------------------------


class Coupled(AbstractChannel):
    """dx/dt = -x/10, dy/dt = 100·x - y (1/ms): y driven by x, as a calcium pool by a
    calcium channel's gate; advanced from ``derivative``."""

    name: str = eqx.field(default="cpl", static=True, kw_only=True)
    gate_names: ClassVar[tuple[str, ...]] = ("x", "y")

    def steady_state(self, v, temperature):  # the initial state only
        return {"x": jnp.ones_like(v), "y": jnp.zeros_like(v)}

    def derivative(self, v, gates, temperature):
        return {"x": -gates["x"] / 10.0, "y": 100.0 * gates["x"] - gates["y"]}

    def current(self, v, gates):
        return 0.0 * v


def test_gates_driving_each_other_take_a_backward_euler_step_together():
    # y = 100/0.9·(exp(-t/10) - exp(-t)). A channel's derivative() gates step together,
    # linearly implicit Euler (for this linear system backward Euler: (I - dt·A)⁻¹ per
    # step, as NEURON's derivimplicit), first order to the exact solution. The solver
    # used to take the derivative of each gate's rate along all the channel's gates
    # together, counting x's drive as y's own rate: y 91.6 for 59.7 at 1 ms (dt
    # 0.025), and a Pinsky-Rinzel cell (below) fired singles for doublets.
    comp = jn.Compartment(area=1000.0, channels=[jn.channels.Leak(g=1e-4, e=-65.0), Coupled()])
    assert comp.gate_groups() == ((("x_cpl",), ("y_cpl",)),)
    errors = []
    for dt in (0.025, 0.005):
        tr = jn.simulate(comp, 5.0, dt=dt, v0=-65.0, record=("x_cpl", "y_cpl"))
        t = np.asarray(tr.t)
        step = np.linalg.inv(np.eye(2) - dt * np.array([[-0.1, 0.0], [100.0, -1.0]]))
        xy = [np.array([1.0, 0.0])]
        for _ in t[1:]:
            xy.append(step @ xy[-1])
        np.testing.assert_allclose(np.stack([np.ravel(tr.x_cpl), np.ravel(tr.y_cpl)], 1), np.array(xy),
                                   rtol=1e-12, atol=1e-12)
        exact = 100.0 / 0.9 * (np.exp(-t / 10.0) - np.exp(-t))
        errors.append(np.max(np.abs(np.asarray(tr.y_cpl).ravel() - exact)))
    assert errors[0] < 0.5  # of a peak of 77
    assert errors[0] / errors[1] == pytest.approx(5.0, rel=0.05)  # first order in dt


class Pool(AbstractChannel):
    """A calcium-pool-like gate relaxing to 1.2e-4 with tau 200 ms; ``steady_state``
    gives that rest (``at_rest``) or an initial value of 5e-4, as NEURON's INITIAL
    cai = cai0 does."""

    name: str = eqx.field(default="pool", static=True, kw_only=True)
    gate_names: ClassVar[tuple[str, ...]] = ("ca",)
    at_rest: bool = eqx.field(default=True, static=True)

    def steady_state(self, v, temperature):
        return {"ca": (1.2e-4 if self.at_rest else 5e-4) * jnp.ones_like(v)}

    def derivative(self, v, gates, temperature):
        return {"ca": (1.2e-4 - gates["ca"]) / 200.0}

    def current(self, v, gates):
        return 1e-4 * gates["ca"] * (v - 50.0)


def test_steady_state_refuses_gates_that_are_not_at_rest():
    # jn.steady_state holds the gates at steady_state(v): where that is an initial
    # value and not the rest, its "fixed point" drifts (cai 5e-4, not 1.2e-4; v
    # 2e-4 mV off), and it returned it without a word.
    def comp(at_rest):
        return jn.Compartment(area=1000.0, channels=[jn.channels.Leak(g=1e-4, e=-65.0), Pool(at_rest=at_rest)])

    v_rest = (-65.0 * 1e-4 + 50.0 * 1e-4 * 1.2e-4) / (1e-4 + 1e-4 * 1.2e-4)
    for run in (jn.steady_state, eqx.filter_jit(jn.steady_state)):
        state = run(comp(True))
        assert float(state.v) == pytest.approx(v_rest, abs=1e-9)
        assert float(state.gates["ca_pool"]) == pytest.approx(1.2e-4, rel=1e-12)
    with pytest.raises(ValueError, match=r"gate\(s\) \['ca_pool'\] are not at rest at the fixed point.*cai0"):
        jn.steady_state(comp(False))
    with pytest.raises(eqx.EquinoxRuntimeError, match="gates are not at rest at the fixed point"):
        eqx.filter_jit(jn.steady_state)(comp(False))
    with pytest.raises(ValueError, match="not at rest"):
        jn.input_resistance(comp(False))
    state = jn.steady_state(comp(False), throw=False)  # the voltage with those gates, as asked
    assert float(state.gates["ca_pool"]) == 5e-4 and float(state.v) != pytest.approx(v_rest, abs=1e-4)
    # So is a gate with gate_inf_tau kinetics whose class overrides steady_state with a
    # start value: it was taken as at rest by construction (-26.7 mV for -52.7).
    class PoolStart(Pool):
        def gate_inf_tau(self, v, temperature):
            return {"ca": (1.2e-4 * jnp.ones_like(v), 200.0 * jnp.ones_like(v))}

        def steady_state(self, v, temperature):
            return {"ca": 5e-4 * jnp.ones_like(v)}

    start = jn.Compartment(area=1000.0, channels=[jn.channels.Leak(g=1e-4, e=-65.0), PoolStart()])
    assert start.gate_increments(start.init_state(-65.0).v, start.init_state(-65.0).gates, 0.025)  # cnexp
    with pytest.raises(ValueError, match=r"gate\(s\) \['ca_pool'\] are not at rest"):
        jn.steady_state(start)
    # A kinetic scheme's steady_state giving a start (all closed), not the rest: refused too.
    with pytest.raises(ValueError, match=r"gate\(s\) \['C_nam', 'O_nam'\] are not at rest"):
        jn.steady_state(jn.Compartment(area=1000.0, channels=[jn.channels.Leak(), Markov3()]), v_guess=-10.0)


class Markov3(AbstractChannel):
    """A kinetic scheme C <-> O <-> I with all three states as gates (C + O + I = 1),
    rates in 1/ms at -10 mV from a hold at -80 mV; advanced from derivative()."""

    name: str = eqx.field(default="nam", static=True, kw_only=True)
    gate_names: ClassVar[tuple[str, ...]] = ("C", "O", "I")

    def steady_state(self, v, temperature):
        return {"C": jnp.ones_like(v), "O": jnp.zeros_like(v), "I": jnp.zeros_like(v)}

    def derivative(self, v, gates, temperature):
        c, o, i = gates["C"], gates["O"], gates["I"]
        a, b, k_i, k_r = 40.0, 0.3, 0.8, 0.001
        return {"C": -a * c + b * o, "O": a * c - (b + k_i) * o + k_r * i, "I": k_i * o - k_r * i}

    def current(self, v, gates):
        return 0.0 * v


def test_a_kinetic_scheme_keeps_its_states_summing_to_one():
    # Stepped one by one, each state on its own rate, the states gained probability
    # every step: O peaked at 1.45 (dt 0.025) for an exact 0.917, the sum 1.58. Stepped
    # together (backward Euler, NEURON's KINETIC ... METHOD sparse) the sum stays 1 to
    # rounding, every state in [0, 1], first order to the matrix exponential.
    from scipy.linalg import expm

    comp = jn.Compartment(area=1000.0, channels=[Markov3()])
    q = np.array([[-40.0, 0.3, 0.0], [40.0, -1.1, 0.001], [0.0, 0.8, -0.001]])
    errors = []
    for dt in (0.1, 0.025, 0.005):
        tr = jn.simulate(comp, 10.0, dt=dt, v0=-10.0, record=("C_nam", "O_nam", "I_nam"))
        states = np.stack([np.ravel(getattr(tr, k)) for k in ("C_nam", "O_nam", "I_nam")], 1)
        np.testing.assert_allclose(states.sum(1), 1.0, rtol=0, atol=1e-12)
        assert states.min() >= 0.0 and states.max() <= 1.0
        step, x = np.linalg.inv(np.eye(3) - dt * q), [np.array([1.0, 0.0, 0.0])]
        for _ in range(len(states) - 1):
            x.append(step @ x[-1])
        np.testing.assert_allclose(states, np.array(x), rtol=0, atol=1e-12)  # backward Euler
        exact = np.stack([expm(q * t) @ np.array([1.0, 0.0, 0.0]) for t in np.asarray(tr.t)])
        errors.append(np.max(np.abs(states - exact)))
    assert errors[1] < 0.15 and errors[1] / errors[2] == pytest.approx(5.0, rel=0.3)  # first order
    # The same in a Network population (its gates' paths carry the population's name).
    net = jn.Network({"p": comp}, [])
    assert net.gate_groups() == ((("p", "C_nam"), ("p", "O_nam"), ("p", "I_nam")),)
    in_net = jn.simulate(net, 10.0, dt=0.005, v0=-10.0, record=("O_nam",))
    np.testing.assert_allclose(np.ravel(in_net["p"].O_nam), np.ravel(tr.O_nam), rtol=0, atol=1e-13)


class PRSoma(AbstractAlphaBetaChannel):
    """Pinsky & Rinzel (1994): the soma's fast sodium (m at steady state) and delayed
    rectifier; voltages on their scale (rest near -4.6 mV)."""

    name: str = eqx.field(default="prsoma", static=True, kw_only=True)
    gate_names: ClassVar[tuple[str, ...]] = ("h", "n")

    def rates(self, v):
        return {"h": (0.128 * jnp.exp((17.0 - v) / 18.0), 4.0 / (1.0 + jnp.exp((40.0 - v) / 5.0))),
                "n": (0.016 * exprel_ratio(35.1 - v, 5.0), 0.25 * jnp.exp(0.5 - 0.025 * v))}

    def rate_factor(self, temperature):
        return 1.0

    def current(self, v, gates):
        am, bm = 0.32 * exprel_ratio(13.1 - v, 4.0), 0.28 * exprel_ratio(v - 40.1, 5.0)
        return 0.03 * (am / (am + bm)) ** 2 * gates["h"] * (v - 120.0) + 0.015 * gates["n"] * (v + 15.0)


def _pr_dendrite_rates(v):
    a_s, b_s = 1.6 / (1.0 + jnp.exp(-0.072 * (v - 65.0))), 0.02 * exprel_ratio(v - 51.1, 5.0)
    a_low = jnp.exp((v - 10.0) / 11.0 - (v - 6.5) / 27.0) / 18.975
    a_c = jnp.where(v <= 50.0, a_low, 2.0 * jnp.exp((6.5 - v) / 27.0))
    b_c = jnp.where(v <= 50.0, 2.0 * jnp.exp((6.5 - v) / 27.0) - a_low, 0.0)
    return a_s, b_s, a_c, b_c


class PRDendrite(AbstractChannel):
    """Pinsky & Rinzel (1994)'s dendrite: calcium current (s²), its pool ``ca`` (fed by
    the calcium current in µA/cm², decaying at 0.075/ms), the slow AHP (q, driven by
    ca) and the calcium-dependent K current (c·min(ca/250, 1))."""

    name: str = eqx.field(default="prd", static=True, kw_only=True)
    gate_names: ClassVar[tuple[str, ...]] = ("s", "c", "q", "ca")

    def steady_state(self, v, temperature):
        a_s, b_s, a_c, b_c = _pr_dendrite_rates(v)
        s = a_s / (a_s + b_s)
        ca = -0.13 * 10.0 * s**2 * (v - 140.0) / 0.075
        a_q = jnp.minimum(2e-5 * ca, 0.01)
        return {"s": s, "c": a_c / (a_c + b_c), "q": a_q / (a_q + 0.001), "ca": ca}

    def derivative(self, v, gates, temperature):
        a_s, b_s, a_c, b_c = _pr_dendrite_rates(v)
        s, c, q, ca = gates["s"], gates["c"], gates["q"], gates["ca"]
        i_ca = 10.0 * s**2 * (v - 140.0)  # µA/cm²
        a_q = jnp.minimum(2e-5 * ca, 0.01)
        return {"s": a_s * (1 - s) - b_s * s, "c": a_c * (1 - c) - b_c * c,
                "q": a_q * (1 - q) - 0.001 * q, "ca": -0.13 * i_ca - 0.075 * ca}

    def current(self, v, gates):
        s, c, q, ca = gates["s"], gates["c"], gates["q"], gates["ca"]
        return (0.01 * s**2 * (v - 140.0) + 0.0008 * q * (v + 15.0)
                + 0.015 * c * jnp.minimum(ca / 250.0, 1.0) * (v + 15.0))


def _pinsky_rinzel_reference(i_soma, t1):
    """Pinsky & Rinzel's 8 equations (gc 2.1 mS/cm², p 0.5, Cm 3 µF/cm², leak 0.1
    mS/cm² to 0 mV) by SciPy's LSODA at rtol 1e-10: the somatic spike times (20 mV)."""
    from scipy.integrate import solve_ivp

    def exprel(x, y):
        return x / np.expm1(x / y)

    a_m = lambda v: 0.32 * exprel(13.1 - v, 4.0)  # noqa: E731
    b_m = lambda v: 0.28 * exprel(v - 40.1, 5.0)  # noqa: E731

    def f(t, y):
        vs, vd, h, n, s, c, q, ca = y
        a_low = np.exp((vd - 10) / 11 - (vd - 6.5) / 27) / 18.975
        a_c = a_low if vd <= 50 else 2 * np.exp((6.5 - vd) / 27)
        b_c = 2 * np.exp((6.5 - vd) / 27) - a_low if vd <= 50 else 0.0
        i_s = 0.1 * vs + 30 * (a_m(vs) / (a_m(vs) + b_m(vs))) ** 2 * h * (vs - 120) + 15 * n * (vs + 15)
        i_ca = 10 * s * s * (vd - 140)
        i_d = 0.1 * vd + i_ca + 0.8 * q * (vd + 15) + 15 * c * min(ca / 250, 1) * (vd + 15)
        return [(-i_s + 2.1 / 0.5 * (vd - vs) + i_soma / 0.5) / 3.0, (-i_d + 2.1 / 0.5 * (vs - vd)) / 3.0,
                0.128 * np.exp((17 - vs) / 18) * (1 - h) - 4 / (1 + np.exp((40 - vs) / 5)) * h,
                0.016 * exprel(35.1 - vs, 5.0) * (1 - n) - 0.25 * np.exp(0.5 - 0.025 * vs) * n,
                1.6 / (1 + np.exp(-0.072 * (vd - 65))) * (1 - s) - 0.02 * exprel(vd - 51.1, 5.0) * s,
                a_c * (1 - c) - b_c * c, min(2e-5 * ca, 0.01) * (1 - q) - 0.001 * q, -0.13 * i_ca - 0.075 * ca]

    gates = {k: float(x[0]) for k, x in {**PRSoma().steady_state(jnp.array([-4.6]), 6.3),
                                          **PRDendrite().steady_state(jnp.array([-4.6]), 6.3)}.items()}
    y0 = [-4.6, -4.6] + [gates[k] for k in ("h", "n", "s", "c", "q", "ca")]
    sol = solve_ivp(f, (0.0, t1), y0, method="LSODA", rtol=1e-10, atol=1e-10, max_step=0.05, dense_output=True)
    t = np.arange(0.0, t1, 0.001)
    vs = sol.sol(t)[0]
    return t[1:][(vs[:-1] < 20.0) & (vs[1:] >= 20.0)]


def _pinsky_rinzel_soma_v(t1=120.0):
    """jaxneuro's Pinsky-Rinzel cell: two 10 µm compartments whose axial conductance is
    gc/p of each one's area (Ra = d/(8·L²·gc)), Is/p = 1.5 µA/cm² into the soma (Is
    0.75 µA/cm² of the whole cell); its time and somatic voltage, dt 0.025 ms."""
    ra = 10e-4 / (8 * (10e-4) ** 2 * 2.1e-3)

    def half(name, channel):
        return jn.Cable(length=10.0, diam=10.0, Ra=ra, cm=3.0, nseg=1, name=name,
                        channels=[jn.channels.Leak(g=1e-4, e=0.0), channel])

    cell = jn.Cell([half("soma", PRSoma()), half("dend", PRDendrite())], parents=[None, ("soma", 1.0)])
    assert cell.gate_groups() == ((("s_prd",), ("c_prd",), ("q_prd",), ("ca_prd",)),)
    amp = 0.75 * 1e-3 * (2 * np.pi * 10.0 * 10.0 * 1e-8) * 1e6  # µA/cm² of the whole cell -> nA
    stim = jn.StepCurrent(amp=amp, delay=0.0, dur=np.inf, target=("soma", 0.5))
    tr = jn.simulate(cell, t1, dt=0.025, stimuli=[stim], v0=-4.6, record=("v",))
    return np.asarray(tr.t), np.asarray(tr.v)[:, 0]


def _upward(t, v, threshold=20.0):
    return t[1:][(v[:-1] < threshold) & (v[1:] >= threshold)]


def test_pinsky_rinzel_cell_bursts_as_its_exact_solution():
    # Doublets (24.4, 27.0; 105.2, 108.5 ms). At dt 0.025 ms the default solver (the
    # dendrite's gates and pool stepped together, backward Euler) and NEURON's
    # derivimplicit both fire within 0.5 ms of these. Before the gates were linearised
    # on their own rates: 24.3, 29.9, 67.1, 92.5 ms, singles at 13 Hz.
    ref = _pinsky_rinzel_reference(0.75, 120.0)
    np.testing.assert_allclose(ref, [24.365, 27.021, 105.24, 108.52], atol=0.01)
    ours = _upward(*_pinsky_rinzel_soma_v())
    assert len(ours) == 4
    np.testing.assert_allclose(ours, ref, atol=0.5)
    np.testing.assert_allclose(ours[:2], ref[:2], atol=0.06)


def test_pinsky_rinzel_cell_matches_neuron(neuron_runs):
    # NEURON with the NMODL above (derivimplicit for the dendrite): the same spikes to
    # within a step over 120 ms, the voltage to 0.05 mV through the first burst.
    t, v = _pinsky_rinzel_soma_v()
    ref = neuron_runs["pinsky_rinzel"]
    assert ref.shape == v.shape
    np.testing.assert_allclose(_upward(t, v), _upward(t, ref), atol=0.03)
    first = t <= 50.0
    assert np.max(np.abs(v[first] - ref[first])) < 0.05 and ref.max() > 20.0

class Regenerative(AbstractChannel):
    """dx/dt = p·x - w·y, dy/dt = w·x - y: x grows at p (1/ms)."""

    p: object = units.param(None, default=40.0)
    w: object = units.param(None, default=20.0)
    name: str = eqx.field(default="rg", static=True, kw_only=True)
    gate_names: ClassVar[tuple[str, ...]] = ("x", "y")

    def steady_state(self, v, temperature):
        return {"x": 0.0 * v + 0.1, "y": 0.0 * v + 0.2}

    def derivative(self, v, gates, temperature):
        return {"x": self.p * gates["x"] - self.w * gates["y"], "y": self.w * gates["x"] - gates["y"]}

    def current(self, v, gates):
        return 0.0 * v


def test_a_gate_growing_at_one_over_dt_pivots_and_keeps_its_gradient():
    # At p·dt = 1 the first pivot of I - dt·J is 0: elimination without pivoting gave
    # x = inf where backward Euler's answer is 0.01; and with w = 0 (exponential Euler
    # used) the unused elimination's division by 0 made the gradient NaN.
    dt = 0.025

    def final(p, w, t1):
        tr = jn.simulate(jn.Compartment(area=1000.0, channels=[Regenerative(p=p, w=w)]), t1, dt=dt, v0=-65.0,
                         record=("x_rg", "y_rg"))
        return jnp.stack([tr.x_rg.reshape(-1)[-1], tr.y_rg.reshape(-1)[-1]])

    j = np.array([[40.0, -20.0], [20.0, -1.0]])
    x0 = np.array([0.1, 0.2])
    backward = x0 + np.linalg.solve(np.eye(2) - dt * j, dt * j @ x0)
    np.testing.assert_allclose(np.asarray(final(40.0, 20.0, dt)), backward, rtol=1e-12)
    assert backward[0] == pytest.approx(0.01)
    value, grad = jax.value_and_grad(lambda p: final(p, 0.0, 2 * dt)[0])(40.0)
    assert float(value) == pytest.approx(0.1 * np.exp(2.0), rel=1e-12)  # exponential Euler, exact
    assert float(grad) == pytest.approx(0.1 * 2 * dt * np.exp(2.0), rel=1e-10)
