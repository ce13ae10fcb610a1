"""BrainPy-family channels against an independent NumPy transcription of BrainPy's code.

The reference functions below are written as BrainPy writes them (alpha/beta or
inf/tau, ``phi`` multiplying the gate derivative, currents ``g·(E - V)`` with BrainPy's
inward-positive sign), in BrainPy's mS/cm². Removable singularities are filled in with
their L'Hôpital limits. Sources (brainpy/BrainPy):

- INa_Ba2002:  brainpy/_src/dyn/channels/sodium_compatible.py
- IKDR_Ba2002: brainpy/_src/dyn/channels/potassium_compatible.py
- ICaT_HM1992: brainpy/_src/dyn/channels/calcium.py (E_Ca: ions/calcium.py CalciumFixed)
- IKNI_Ya1989: brainpy/_src/dyn/channels/potassium_compatible.py
- Ih_HM1992:   brainpy/_src/dyn/channels/hyperpolarization_activated.py
"""

import re

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import saiunit as u  # noqa: E402

from jaxneuro.channels.bazhenov2002 import IKDR_Ba2002, INa_Ba2002  # noqa: E402
from jaxneuro.channels.calcium import ICaT_HM1992  # noqa: E402
from jaxneuro.channels.ih import Ih_HM1992  # noqa: E402
from jaxneuro.channels.potassium import IKNI_Ya1989  # noqa: E402

RTOL = 1e-6
VOLTAGES = [-90.0, -70.0, -55.0, -40.0, -20.0, 0.0, 20.0]
MS_PER_CM2 = 1e-3  # 1 mS/cm² in S/cm²


# --------------------------------------------------------------------------------------
# Independent NumPy reference (BrainPy's formulas, BrainPy's units and sign)
# --------------------------------------------------------------------------------------
class RefINa:
    g_max, E, T, V_sh = 90.0, 50.0, 36.0, -50.0

    def __init__(self, **kw):
        self.__dict__.update(kw)
        self.phi = 3 ** ((self.T - 36) / 10)

    def p_alpha(self, V):
        temp = V - self.V_sh - 13.0
        if temp == 0.0:
            return 0.32 * 4.0  # lim t->0 of 0.32 t / (1 - exp(-t/4))
        return 0.32 * temp / (1.0 - np.exp(-temp / 4.0))

    def p_beta(self, V):
        temp = V - self.V_sh - 40.0
        if temp == 0.0:
            return 0.28 * 5.0  # lim t->0 of -0.28 t / (1 - exp(t/5))
        return -0.28 * temp / (1.0 - np.exp(temp / 5.0))

    def q_alpha(self, V):
        return 0.128 * np.exp(-(V - self.V_sh - 17.0) / 18.0)

    def q_beta(self, V):
        return 4.0 / (1.0 + np.exp(-(V - self.V_sh - 40.0) / 5.0))

    def inf_tau(self, V):
        out = {}
        for g, (a, b) in {"p": (self.p_alpha(V), self.p_beta(V)),
                          "q": (self.q_alpha(V), self.q_beta(V))}.items():
            # dx/dt = phi (a (1-x) - b x) = (a/(a+b) - x) / (1/(phi (a+b)))
            out[g] = (a / (a + b), 1.0 / (self.phi * (a + b)))
        return out

    def brainpy_current(self, V, p, q):  # mS/cm² · mV = µA/cm², inward positive
        return self.g_max * p ** 3 * q * (self.E - V)


class RefIKDR:
    g_max, E, V_sh, T_base, T, phi = 10.0, -90.0, -50.0, 3.0, 36.0, None

    def __init__(self, **kw):
        self.__dict__.update(kw)
        if self.phi is None:
            self.phi = self.T_base ** ((self.T - 36) / 10)

    def p_alpha(self, V):
        tmp = V - self.V_sh - 15.0
        if tmp == 0.0:
            return 0.032 * 5.0  # lim t->0 of 0.032 t / (1 - exp(-t/5))
        return 0.032 * tmp / (1.0 - np.exp(-tmp / 5.0))

    def p_beta(self, V):
        return 0.5 * np.exp(-(V - self.V_sh - 10.0) / 40.0)

    def inf_tau(self, V):
        a, b = self.p_alpha(V), self.p_beta(V)
        return {"p": (a / (a + b), 1.0 / (self.phi * (a + b)))}

    def brainpy_current(self, V, p):
        return self.g_max * p ** 4 * (self.E - V)


class RefICaT:
    g_max, E, V_sh, T, T_base_p, T_base_q, phi_p, phi_q = 2.0, 120.0, -3.0, 36.0, 3.55, 3.0, None, None

    def __init__(self, **kw):
        self.__dict__.update(kw)
        if self.phi_p is None:
            self.phi_p = self.T_base_p ** ((self.T - 24) / 10)
        if self.phi_q is None:
            self.phi_q = self.T_base_q ** ((self.T - 24) / 10)

    def f_p_inf(self, V):
        return 1.0 / (1 + np.exp(-(V + 59.0 - self.V_sh) / 6.2))

    def f_p_tau(self, V):
        return 1.0 / (np.exp(-(V + 132.0 - self.V_sh) / 16.7) + np.exp((V + 16.8 - self.V_sh) / 18.2)) + 0.612

    def f_q_inf(self, V):
        return 1.0 / (1.0 + np.exp((V + 83.0 - self.V_sh) / 4.0))

    def f_q_tau(self, V):
        if V >= (-80.0 + self.V_sh):
            return np.exp(-(V + 22.0 - self.V_sh) / 10.5) + 28.0
        return np.exp((V + 467.0 - self.V_sh) / 66.6)

    def inf_tau(self, V):
        # dp/dt = phi_p (p_inf - p) / tau_p  ->  effective tau = tau_p / phi_p
        return {"p": (self.f_p_inf(V), self.f_p_tau(V) / self.phi_p),
                "q": (self.f_q_inf(V), self.f_q_tau(V) / self.phi_q)}

    def brainpy_current(self, V, p, q):
        return self.g_max * p * p * q * (self.E - V)


class RefIKNI:
    g_max, E, phi_p, tau_max, V_sh = 0.004, -90.0, 1.0, 4e3, 0.0

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def f_p_inf(self, V):
        return 1.0 / (1.0 + np.exp(-(V - self.V_sh + 35.0) / 10.0))

    def f_p_tau(self, V):
        temp = V - self.V_sh + 35.0
        return self.tau_max / (3.3 * np.exp(temp / 20.0) + np.exp(-temp / 20.0))

    def inf_tau(self, V):
        return {"p": (self.f_p_inf(V), self.f_p_tau(V) / self.phi_p)}

    def brainpy_current(self, V, p):
        return self.g_max * p * (self.E - V)


class RefIh:
    g_max, E, phi = 10.0, 43.0, 1.0

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def f_p_inf(self, V):
        return 1.0 / (1.0 + np.exp((V + 75.0) / 5.5))

    def f_p_tau(self, V):
        return 1.0 / (np.exp(-0.086 * V - 14.59) + np.exp(0.0701 * V - 1.87))

    def inf_tau(self, V):
        return {"p": (self.f_p_inf(V), self.f_p_tau(V) / self.phi)}

    def brainpy_current(self, V, p):
        return self.g_max * p * (self.E - V)


def ours_current_from_brainpy(i_brainpy_uA_per_cm2):
    """BrainPy's g(E - V) in mS/cm²·mV = µA/cm², inward positive -> mA/cm², outward positive."""
    return -1e-3 * i_brainpy_uA_per_cm2


# name -> (our class, reference class, kwargs in OUR units, same in BRAINPY units,
#          extra voltages: exact singular points / branch switches of the formulas)
CASES = {
    "INa_Ba2002": (INa_Ba2002, RefINa, {}, {}, [-37.0, -10.0]),
    "INa_Ba2002_shifted": (INa_Ba2002, RefINa,
                           dict(V_sh=-60.0, T=30.0, g_max=0.1, E=55.0),
                           dict(V_sh=-60.0, T=30.0, g_max=100.0, E=55.0), [-47.0, -20.0]),
    "IKDR_Ba2002": (IKDR_Ba2002, RefIKDR, {}, {}, [-35.0]),
    "IKDR_Ba2002_phi": (IKDR_Ba2002, RefIKDR, dict(phi=2.5, V_sh=-55.0),
                        dict(phi=2.5, V_sh=-55.0), [-40.0]),
    "ICaT_HM1992": (ICaT_HM1992, RefICaT, {}, {}, [-83.0, -83.0 - 1e-9, -82.0, -84.0]),
    "ICaT_HM1992_T": (ICaT_HM1992, RefICaT, dict(T=30.0, V_sh=0.0, E=100.0),
                      dict(T=30.0, V_sh=0.0, E=100.0), [-80.0, -80.0 - 1e-9]),
    "IKNI_Ya1989": (IKNI_Ya1989, RefIKNI, {}, {}, [-35.0]),
    "IKNI_Ya1989_params": (IKNI_Ya1989, RefIKNI, dict(phi_p=2.0, tau_max=1000.0, V_sh=5.0),
                           dict(phi_p=2.0, tau_max=1000.0, V_sh=5.0), [-30.0]),
    "Ih_HM1992": (Ih_HM1992, RefIh, {}, {}, [-75.0]),
    "Ih_HM1992_params": (Ih_HM1992, RefIh, dict(E=-43.0, phi=3.0, g_max=0.02),
                         dict(E=-43.0, phi=3.0, g_max=20.0), []),
}


@pytest.mark.parametrize("case", list(CASES))
def test_gate_inf_tau_and_current_match_brainpy(case):
    cls, ref_cls, ours_kw, ref_kw, extra = CASES[case]
    ch, ref = cls(**ours_kw), ref_cls(**ref_kw)
    assert set(ch.gate_names) == set(ref.inf_tau(0.0))
    for V in VOLTAGES + extra:
        got = ch.gate_inf_tau(jnp.float64(V), 6.3)  # compartment temperature unused
        want = ref.inf_tau(V)
        for g in ch.gate_names:
            np.testing.assert_allclose(float(got[g][0]), want[g][0], rtol=RTOL, err_msg=f"{g}_inf V={V}")
            np.testing.assert_allclose(float(got[g][1]), want[g][1], rtol=RTOL, err_msg=f"tau_{g} V={V}")
        # current at several gate values (steady state and arbitrary ones)
        for gates in ({g: want[g][0] for g in ch.gate_names},
                      {g: 0.3 + 0.2 * k for k, g in enumerate(ch.gate_names)}):
            i = ch.current(jnp.float64(V), {g: jnp.float64(x) for g, x in gates.items()})
            i_ref = ours_current_from_brainpy(ref.brainpy_current(V, *[gates[g] for g in ch.gate_names]))
            np.testing.assert_allclose(float(i), i_ref, rtol=RTOL, atol=1e-15, err_msg=f"current V={V}")


@pytest.mark.parametrize("case", list(CASES))
def test_steady_state_and_derivative_consistent(case):
    cls, _, ours_kw, _, _ = CASES[case]
    ch = cls(**ours_kw)
    v = jnp.asarray(VOLTAGES)
    ss = ch.steady_state(v, 6.3)
    d = ch.derivative(v, ss, 6.3)
    for g in ch.gate_names:
        assert ss[g].shape == v.shape
        assert np.all((np.asarray(ss[g]) > 0) & (np.asarray(ss[g]) < 1))
        np.testing.assert_allclose(np.asarray(d[g]), 0.0, atol=1e-12)


def test_defaults_in_jaxneuro_units():
    na = INa_Ba2002()
    assert float(na.g_max) == pytest.approx(0.09) and float(na.E) == 50.0
    assert float(na.T) == 36.0 and float(na.V_sh) == -50.0
    k = IKDR_Ba2002()
    assert float(k.g_max) == pytest.approx(0.01) and float(k.E) == -90.0
    assert float(k.V_sh) == -50.0 and float(k.T) == 36.0 and float(k.T_base) == 3.0 and k.phi is None
    ca = ICaT_HM1992()
    assert float(ca.g_max) == pytest.approx(0.002) and float(ca.E) == 120.0
    assert float(ca.V_sh) == -3.0 and float(ca.T) == 36.0
    assert float(ca.T_base_p) == 3.55 and float(ca.T_base_q) == 3.0
    assert ca.phi_p is None and ca.phi_q is None
    m = IKNI_Ya1989()
    assert float(m.g_max) == pytest.approx(4e-6) and float(m.E) == -90.0
    assert float(m.phi_p) == 1.0 and float(m.tau_max) == 4000.0 and float(m.V_sh) == 0.0
    h = Ih_HM1992()
    assert float(h.g_max) == pytest.approx(0.01) and float(h.E) == 43.0 and float(h.phi) == 1.0
    for ch, name, gates in [(na, "INa_Ba2002", ("p", "q")), (k, "IKDR_Ba2002", ("p",)),
                            (ca, "ICaT_HM1992", ("p", "q")), (m, "IKNI_Ya1989", ("p",)),
                            (h, "Ih_HM1992", ("p",))]:
        assert ch.name == name and ch.gate_names == gates


# --------------------------------------------------------------------------------------
# Temperature / phi scaling
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [INa_Ba2002, IKDR_Ba2002])
def test_ba2002_tau_scales_by_three_per_ten_degrees(cls):
    v = jnp.asarray(VOLTAGES + [-37.0, -35.0, -10.0])
    a, b = cls(T=36.0).gate_inf_tau(v, 6.3), cls(T=46.0).gate_inf_tau(v, 6.3)
    for g in cls.gate_names:
        np.testing.assert_allclose(np.asarray(b[g][1]), np.asarray(a[g][1]) / 3.0, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(b[g][0]), np.asarray(a[g][0]), rtol=1e-12)
    # the compartment's temperature does not enter
    c = cls().gate_inf_tau(v, 40.0)
    for g in cls.gate_names:
        np.testing.assert_allclose(np.asarray(c[g][1]), np.asarray(a[g][1]), rtol=1e-12)


def test_ikdr_phi_overrides_temperature():
    v = jnp.asarray(VOLTAGES)
    a = IKDR_Ba2002().gate_inf_tau(v, 6.3)["p"][1]
    b = IKDR_Ba2002(T=46.0, phi=2.0).gate_inf_tau(v, 6.3)["p"][1]
    np.testing.assert_allclose(np.asarray(b), np.asarray(a) / 2.0, rtol=1e-12)
    c = IKDR_Ba2002(T=46.0, T_base=2.0).gate_inf_tau(v, 6.3)["p"][1]
    np.testing.assert_allclose(np.asarray(c), np.asarray(a) / 2.0, rtol=1e-12)


def test_icat_temperature_factors():
    v = jnp.asarray(VOLTAGES + [-83.0])
    at24 = ICaT_HM1992(T=24.0).gate_inf_tau(v, 6.3)
    at34 = ICaT_HM1992(T=34.0).gate_inf_tau(v, 6.3)
    np.testing.assert_allclose(np.asarray(at34["p"][1]), np.asarray(at24["p"][1]) / 3.55, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(at34["q"][1]), np.asarray(at24["q"][1]) / 3.0, rtol=1e-12)
    fixed = ICaT_HM1992(T=34.0, phi_p=1.0, phi_q=1.0).gate_inf_tau(v, 6.3)
    np.testing.assert_allclose(np.asarray(fixed["p"][1]), np.asarray(at24["p"][1]), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(fixed["q"][1]), np.asarray(at24["q"][1]), rtol=1e-12)


@pytest.mark.parametrize("cls,field", [(IKNI_Ya1989, "phi_p"), (Ih_HM1992, "phi")])
def test_phi_divides_tau(cls, field):
    v = jnp.asarray(VOLTAGES)
    a = cls().gate_inf_tau(v, 6.3)["p"][1]
    b = cls(**{field: 4.0}).gate_inf_tau(v, 6.3)["p"][1]
    np.testing.assert_allclose(np.asarray(b), np.asarray(a) / 4.0, rtol=1e-12)


# --------------------------------------------------------------------------------------
# Gradients at the removable singularities
# --------------------------------------------------------------------------------------
SINGULAR = [(INa_Ba2002, -37.0), (INa_Ba2002, -10.0), (IKDR_Ba2002, -35.0)]


def _steady_current(ch, v):
    return ch.current(v, ch.steady_state(v, 6.3))


@pytest.mark.parametrize("cls,v0", SINGULAR)
def test_gradients_finite_and_correct_at_singular_points(cls, v0):
    ch = cls()
    v = jnp.float64(v0)
    gates = ch.steady_state(v, 6.3)
    # d current / d v at fixed gates
    g = jax.grad(lambda x: ch.current(x, gates))(v)
    assert np.isfinite(float(g))
    # through the gates too: steady-state I-V curve and the time constants
    g_ss = jax.grad(lambda x: _steady_current(ch, x))(v)
    assert np.isfinite(float(g_ss))
    h = 1e-4
    fd = (_steady_current(ch, v + h) - _steady_current(ch, v - h)) / (2 * h)
    np.testing.assert_allclose(float(g_ss), float(fd), rtol=1e-6)
    for name in ch.gate_names:
        for k in (0, 1):
            f = lambda x, name=name, k=k: ch.gate_inf_tau(x, 6.3)[name][k]  # noqa: E731
            d = jax.grad(f)(v)
            assert np.isfinite(float(d))
            fd = (f(v + h) - f(v - h)) / (2 * h)
            np.testing.assert_allclose(float(d), float(fd), rtol=1e-5, atol=1e-12)


def test_gradients_with_respect_to_parameters():
    v = jnp.asarray([-37.0, -10.0, 0.0])

    def loss(ch):
        return jnp.sum(_steady_current(ch, v))

    import equinox as eqx

    for ch in [INa_Ba2002(), IKDR_Ba2002(), ICaT_HM1992(), IKNI_Ya1989(), Ih_HM1992()]:
        grads = eqx.filter_grad(loss)(ch)
        for leaf in jax.tree_util.tree_leaves(grads):
            assert np.all(np.isfinite(np.asarray(leaf)))


# --------------------------------------------------------------------------------------
# Arrays, jit, vmap
# --------------------------------------------------------------------------------------
ALL = [INa_Ba2002, IKDR_Ba2002, ICaT_HM1992, IKNI_Ya1989, Ih_HM1992]


@pytest.mark.parametrize("cls", ALL)
def test_broadcasting_jit_vmap(cls):
    v = jnp.linspace(-100.0, 40.0, 29)
    ch = cls()
    ss = ch.steady_state(v, 6.3)
    i = ch.current(v, ss)
    assert i.shape == v.shape
    i_jit = jax.jit(lambda c, x: c.current(x, c.steady_state(x, 6.3)))(ch, v)
    np.testing.assert_allclose(np.asarray(i_jit), np.asarray(i), rtol=1e-12)
    i_vmap = jax.vmap(lambda x: _steady_current(ch, x))(v)
    np.testing.assert_allclose(np.asarray(i_vmap), np.asarray(i), rtol=1e-12)
    # array-valued parameter broadcasts against a scalar voltage
    arr = cls(g_max=jnp.asarray([0.0, 1e-3, 2e-3]))
    i_arr = arr.current(jnp.float64(-20.0), arr.steady_state(jnp.float64(-20.0), 6.3))
    assert i_arr.shape == (3,)
    assert float(i_arr[0]) == 0.0


# --------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------
def test_saiunit_quantities_are_converted():
    assert float(INa_Ba2002(g_max=90 * u.mS / u.cm**2).g_max) == pytest.approx(0.09)
    assert float(IKDR_Ba2002(g_max=10 * u.mS / u.cm**2).g_max) == pytest.approx(0.01)
    assert float(ICaT_HM1992(E=0.12 * u.volt).E) == pytest.approx(120.0)
    assert float(IKNI_Ya1989(tau_max=4 * u.second).tau_max) == pytest.approx(4000.0)
    assert float(Ih_HM1992(g_max=10 * u.mS / u.cm**2).g_max) == pytest.approx(0.01)


@pytest.mark.parametrize("cls", ALL)
def test_wrong_dimension_raises_naming_parameter(cls):
    with pytest.raises(ValueError, match="g_max"):
        cls(g_max=1 * u.mV)
    with pytest.raises(ValueError, match=r"\bE\b"):
        cls(E=1 * u.mS / u.cm**2)


def test_invalid_values_rejected():
    with pytest.raises(ValueError, match="g_max"):
        INa_Ba2002(g_max=-0.1)
    with pytest.raises(ValueError, match="phi"):
        IKDR_Ba2002(phi=0.0)
    with pytest.raises(ValueError, match="tau_max"):
        IKNI_Ya1989(tau_max=-1.0)


def test_package_exports():
    import jaxneuro.channels as channels

    for name in ["INa_Ba2002", "IKDR_Ba2002", "ICaT_HM1992", "IKNI_Ya1989", "Ih_HM1992"]:
        assert name in channels.__all__
        assert getattr(channels, name).__name__ == name


def test_a_temperature_that_does_not_reach_a_channel_with_its_own_is_warned_of():
    # INa_Ba2002 and IKDR_Ba2002 (and ICaT_HM1992) run at their own T, as in BrainPy; a
    # compartment, cable or cell given another temperature ran them at 36 °C without a
    # word (9 spikes in a 0.5 nA step at "26 °C", 6 with T=26 on the channels).
    import warnings

    import jaxneuro as jn

    ba = lambda **kw: [INa_Ba2002(**kw), IKDR_Ba2002(**kw)]  # noqa: E731
    geometry = dict(length=20.0, diam=20.0)
    def warned(make):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            make()
        assert all(w.category is RuntimeWarning and w.filename == __file__ for w in record)  # the user's line
        return [str(w.message) for w in record]

    said = warned(lambda: jn.Compartment(**geometry, channels=ba(), temperature=26.0))
    assert [m.split(" (channel")[0] for m in said] == [
        "Compartment: temperature=26 °C does not apply to INa_Ba2002",
        "Compartment: temperature=26 °C does not apply to IKDR_Ba2002"]
    assert re.search(r"own T=36 °C .* INa_Ba2002\(\.\.\., T=\.\.\.\)", said[0])
    said = warned(lambda: jn.Cable(length=100.0, diam=1.0, channels=[ICaT_HM1992()], temperature=30.0))
    assert [m.split(" (channel")[0] for m in said] == ["Cable: temperature=30 °C does not apply to ICaT_HM1992"]
    soma = jn.Cable(length=20.0, diam=20.0, channels=ba(), name="soma")
    said = warned(lambda: jn.Cell([soma], parents=[None], temperature=26.0))
    assert [m.split(" (channel")[0] for m in said] == [
        "Cell: temperature=26 °C does not apply to INa_Ba2002",
        "Cell: temperature=26 °C does not apply to IKDR_Ba2002"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jn.Compartment(**geometry, channels=ba())  # the default temperature: nothing given
        with jax.enable_x64(False):  # 6.3 stored in float32 is not Python's 6.3
            jn.Compartment(**geometry, channels=ba())
            jn.Cable(length=100.0, diam=1.0, channels=[ICaT_HM1992()])
        jn.Compartment(**geometry, channels=ba(T=26.0), temperature=26.0)  # both agree
        jn.Compartment(**geometry, channels=[jn.channels.HH(), jn.channels.Leak()], temperature=26.0)
        jn.Compartment(**geometry, channels=[Ih_HM1992(), IKDR_Ba2002(phi=2.0)])  # none given
    # Channels that follow no temperature (a fixed phi): Ih_HM1992 and IKNI_Ya1989 ran
    # the same at 30 and 6.3 °C without a word.
    for channel, fixed in ((Ih_HM1992(), "phi"), (IKNI_Ya1989(), "phi_p"), (IKDR_Ba2002(phi=1.0), "phi"),
                           (ICaT_HM1992(phi_p=1.0, phi_q=2.0), "phi_p and phi_q")):
        with pytest.warns(RuntimeWarning, match=rf"Compartment: temperature=30 °C does not apply to "
                                                rf"{type(channel).__name__} .*at the speed {fixed} sets?, whatever "
                                                rf"the temperature; scale {fixed} to change it"):
            jn.Compartment(**geometry, channels=[channel], temperature=30.0)


def test_an_explicit_temperature_equal_to_the_default_is_warned_of_too():
    # temperature=6.3 (NEURON's celsius, the usual value when porting) was silent because
    # it equals the default; 6.4 warned. Only the default left alone is silent now.
    import inspect
    import warnings
    from pathlib import Path

    import jax.tree_util as jtu

    import jaxneuro as jn

    geometry = dict(length=20.0, diam=20.0)
    with pytest.warns(RuntimeWarning, match="Compartment: temperature=6.3 °C does not apply to INa_Ba2002"):
        explicit = jn.Compartment(**geometry, channels=[INa_Ba2002()], temperature=6.3)
    with pytest.warns(RuntimeWarning, match="Cable: temperature=6.3 °C does not apply to ICaT_HM1992"):
        jn.Cable(length=100.0, diam=1.0, channels=[ICaT_HM1992()], temperature=6.3)
    with pytest.warns(RuntimeWarning, match="Cell: temperature=6.3 °C does not apply to IKDR_Ba2002"):
        jn.Cell([jn.Cable(length=100.0, diam=1.0, channels=[IKDR_Ba2002()])], temperature=6.3)
    swc = Path(__file__).parent / "data" / "small_cell_1pt.swc"
    with pytest.warns(RuntimeWarning, match="temperature=6.3 °C does not apply to IKDR_Ba2002"):
        jn.Cell.from_swc(swc, channels=[IKDR_Ba2002()], temperature=6.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        default = jn.Compartment(**geometry, channels=[INa_Ba2002()])
        jn.Cable(length=100.0, diam=1.0, channels=[ICaT_HM1992()])
        jn.Cell([jn.Cable(length=100.0, diam=1.0, channels=[IKDR_Ba2002()])])
        jn.Cell.from_swc(swc, channels=[IKDR_Ba2002()])
        jn.Compartment(**geometry, channels=[INa_Ba2002(T=6.3)], temperature=6.3)  # both agree
    # The default is still a plain 6.3 once built: the same pytree, value and repr.
    assert jtu.tree_structure(default) == jtu.tree_structure(explicit)
    assert float(default.temperature) == float(explicit.temperature) == 6.3
    assert "temperature=6.3" in repr(default) and repr(default) == repr(explicit)
    assert str(inspect.signature(jn.Compartment).parameters["temperature"].default) == "6.3"
