"""The implicit voltage solve for gap-junction coupling, matrix-free.

:class:`~jaxneuro.StaggeredEuler` linearises ``dv/dt`` at the step start. Its JVP along
a vector of ones gives, per compartment, the *row sum* of the full Jacobian,
``b = diag(J_local) + A·1``, where ``A`` is the gap coupling's Jacobian (1/ms). It then
asks the model's :meth:`voltage_coupling` to solve ``(diag(d) − A) x = rhs`` with
``d = 1/h − b``. The intended system is ``(I/h − J_local − A) x = rhs``, i.e. ``d``
would need ``A·1`` added back. For gap junctions ``A·1 = 0``, every current being a
conductance times a voltage *difference* — true for the asymmetric junction too: the
row of ``post`` holds ``+g0/C`` at ``pre`` and ``−g0/C`` on its diagonal, the row of
``pre`` ``+g1/C`` and ``−g1/C`` — so ``d`` is used as given and the gap diagonal,
which lives in ``A``, is counted exactly once. (A coupling with non-zero row sums
would need ``A·1`` added to ``d`` here.)

Multiplying by the capacitances ``C`` (nF) gives ``(diag(C·d') − G) x = C·rhs`` with
``G`` the conductance matrix (µS), applied through the junctions' own current
function (gather and scatter-add over the connection lists, never an N×N matrix). For
symmetric junctions ``−G`` is a graph Laplacian, so the matrix is symmetric positive
definite whenever ``C·d' > 0`` and conjugate gradients apply; with any asymmetric
junction the matrix is still diagonally dominant by rows and restarted GMRES is used
(BiCGSTAB broke down on one-way junctions along a chain). Both are
Jacobi-preconditioned and differentiable (``jax.lax.custom_linear_solve``).

Populations with couplings of their own (a :class:`~jaxneuro.Cell`'s axial tree)
enter the same system: their blocks are solved exactly by their own ``solve`` (Hines
elimination), which is also the preconditioner of the iteration when gap junctions
join them (block Jacobi: each tree with the gaps' diagonal added). Without gap
junctions the blocks are independent and solved directly, with no iteration.

Small systems are solved directly instead: the matrix assembled from ``n`` products and
LU-factorised, exact to rounding and quicker to compile than an iteration. Small is at
most :data:`DENSE_MAX` compartments where the junctions are symmetric (CG, a few cheap
iterations, is quicker above) and :data:`DENSE_MAX_GMRES` where GMRES would solve them.

Tolerance: iteration stops when the residual norm falls below ``tol`` times the norm
of the right-hand side; ``tol`` defaults to 1e-10 in float64 and 1e-5 in float32
(``Network(coupling_tol=...)`` overrides it), with at most ``maxiter`` iterations
(default 10·n; for GMRES, restart cycles). Well-conditioned steps (gap conductance up
to ~100× the leak at dt = 0.025 ms) converge in a handful of iterations. Junctions far
stronger than the membrane along long chains make the system ill-conditioned (its
condition number grows as ``g·n²·dt/C``) and need many. GMRES restarted every 20
vectors stalled there far from the solution, without a word (a chain of 100 default
LIFs joined by ``g`` = 10⁴ µS forward and half that back, 10⁵ times the leak, 1 nA into
its first neuron for 1 ms: 6.8e-4 mV where backward Euler gives 0.4753 mV; every 128
vectors, chains of 200-300 at 3·10⁵-10⁶ times the leak, voltages 300x too small). So
GMRES runs unrestarted in systems of up to :data:`GMRES_FULL_MAX` compartments (it then
converges within n iterations; the chains above equal dense backward Euler, in float32
within 5e-5 mV; symmetric junctions, CG: 0.012766 mV, float32 at its resolution of
voltages near -70 mV, 7e-6 mV (tested: < 2e-5); tests/test_gap_junctions.py), restarted every
:data:`GMRES_RESTART` vectors in larger ones (a 600-chain at 10⁵ times the leak: equal
to backward Euler). A GMRES solve that still stops unconverged (residual above
:data:`RESIDUAL_SLACK` × ``tol``) is a run-time error naming it, never wrong voltages
(CG, which converges within n iterations in exact arithmetic, is not checked).
The Krylov basis costs ``(restart + 1)·n`` numbers of memory per solve.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.sparse.linalg as jsl
from jaxtyping import Array

#: Systems of at most this many unknowns run GMRES unrestarted (a basis of up to
#: n² numbers, 2 MB in float64): restarted, it stalled on strongly coupled chains
#: (module docstring), and unrestarted it converges in at most n iterations.
GMRES_FULL_MAX = 512

#: Krylov vectors GMRES keeps before restarting in larger systems ((n + 1)·128 numbers).
GMRES_RESTART = 128

#: Systems of at most this many compartments are solved directly (dense LU): ~n³/3
#: operations per step, as quick as a few iterations at this size, and exact.
DENSE_MAX = 32

#: As :data:`DENSE_MAX` where the junctions are not all symmetric (GMRES otherwise).
#: Measured (2-core AMD EPYC, float64, 50 ms at dt = 0.025, same process): HH
#: compartments with a ring and two random asymmetric junctions each
#: (benchmarks/gap_neuron.py's network), dense against GMRES 0.027 vs 0.046 s at 48,
#: 0.041 vs 0.054 s at 64, equal at 100, 0.49 vs 0.20 s at 200; LIFs with ten times
#: stronger junctions 0.026 vs 0.082 s at 48, 0.082 vs 0.111 s at 96; compiling the
#: dense solve took 1.0 s against GMRES's 1.7-1.9 s. Symmetric junctions (CG): dense
#: 0.039 vs 0.025 s at 64, hence DENSE_MAX. ``python benchmarks/gap_neuron.py --quick``
#: times both, same run (60 neurons).
DENSE_MAX_GMRES = 96


class GapCoupling(eqx.Module):
    """``solve(diag, rhs)`` for the :class:`~jaxneuro.StaggeredEuler` solver.

    ``junctions``: bound gap junctions; ``capacitance``: nF per flat compartment;
    ``internal``: ``(offset, coupling)`` for each population with a coupling of its own
    (``coupling.solve``/``apply`` on the compartments ``offset:offset + size``).
    """

    junctions: tuple
    capacitance: Array
    internal: tuple = ()
    tol: float | None = eqx.field(default=None, static=True)
    maxiter: int | None = eqx.field(default=None, static=True)

    def _blocks(self):
        return [(off, off + c.capacitance.shape[-1], c) for off, c in self.internal]

    def _internal_apply(self, x):
        """``A_internal·x`` (1/ms times x): the populations' own couplings."""
        out = jnp.zeros_like(x)
        for lo, hi, c in self._blocks():
            out = out.at[lo:hi].set(c.apply(x[lo:hi]))
        return out

    def _block_solve(self, diag, rhs, method):
        """Solve ``(diag(diag) - A_internal) x = rhs`` block by block, exactly."""
        x = rhs / diag
        for lo, hi, c in self._blocks():
            x = x.at[lo:hi].set(c.solve(diag[lo:hi], rhs[lo:hi], method))
        return x

    @property
    def symmetric(self) -> bool:
        return all(j.symmetric for j in self.junctions)

    def conductance_matvec(self, x):
        """``G·x``: the total gap current (nA) at voltages ``x`` (mV)."""
        out = jnp.zeros_like(x)
        for j in self.junctions:
            out = out + j.current(x)
        return out

    def matvec(self, x):
        """``A·x`` with ``A`` the coupling's Jacobian of ``dv/dt`` (1/ms)."""
        return self.conductance_matvec(x) / self.capacitance + self._internal_apply(x)

    def solve(self, diag, rhs, method: str = "hines"):
        """Solve ``(diag(diag) − A) x = rhs`` (see the module docstring); ``method``: how
        the populations' trees are solved (:meth:`~jaxneuro.solve.hines.TreeCoupling.solve`)."""
        if not self.junctions:
            return self._block_solve(diag, rhs, method)
        dtype = rhs.dtype
        # Spike sources have no membrane (an infinite capacitance) and no junctions:
        # their rows become x = 0 (unit diagonal, zero right-hand side), which the
        # solver ignores. Scaled by C they were inf·0 = NaN, and the iterative solvers
        # stopped at once on the NaN residual, returning their starting guess for every
        # compartment (0.96 mV off over 20 ms for a gap-coupled pair).
        membrane = jnp.isfinite(self.capacitance)
        c = jnp.where(membrane, self.capacitance, 1.0)
        diag = jnp.where(membrane, diag, 1.0)
        rhs = jnp.where(membrane, rhs, 0.0)
        # A·1 = 0 for gap junctions (currents are conductances times voltage
        # differences), so diag already is the diagonal the solve needs.
        dd = c * diag  # µS
        g_out = jnp.zeros_like(rhs)
        for j in self.junctions:
            g_out = g_out + j.diagonal(rhs.shape[0], dtype)

        # Rows scaled by C: symmetric when the junctions are (trees are, scaled so).
        def op(x):
            return dd * x - self.conductance_matvec(x) - c * self._internal_apply(x)

        def precondition(r):  # block Jacobi: trees exactly, with the gaps' diagonal
            return self._block_solve(diag + g_out / c, r / c, method)

        b = c * rhs
        tol = self.tol
        if tol is None:
            tol = 1e-10 if dtype == jnp.float64 else 1e-5
        dense_max = DENSE_MAX if self.symmetric else DENSE_MAX_GMRES

        def iterate(matvec, r):
            if r.shape[0] <= dense_max:  # the matrix, column i = matvec(e_i), solved directly
                columns = jax.vmap(matvec, out_axes=1)(jnp.eye(r.shape[0], dtype=r.dtype))
                return jnp.linalg.solve(columns, r)
            # Started from the preconditioned right-hand side, computed in here from the
            # solve's own argument: a starting point computed outside from b would be a
            # constant of the solve depending on b, which reverse mode cannot transpose
            # when b is itself a tangent (jn.steady_state's derivative).
            if self.symmetric:
                # (Not checked as GMRES is below: CG converges within n iterations in
                # exact arithmetic, maxiter is 10·n, and the check's product would add
                # about a sixth to a large network's step.)
                return jsl.cg(matvec, r, x0=precondition(r), tol=tol, atol=0.0, maxiter=self.maxiter,
                              M=precondition)[0]
            # GMRES, not BiCGSTAB: BiCGSTAB breaks down (0/0, NaN everywhere) on the
            # nearly triangular systems of one-way junctions (g[..., 1] = 0 along a
            # chain); GMRES does not. "incremental" stops within a restart cycle as
            # soon as the residual is small, after a handful of products here.
            # JAX's GMRES compares the preconditioned residual with tol times the
            # unpreconditioned right-hand side's norm: with rows of size C/h + g (µS) the
            # preconditioner shrinks residuals by that much, and with strong junctions
            # (g = 1e5 µS in float32) it stopped at its starting guess, voltages 250x
            # off. Rows scaled by the inverse diagonal put both on one scale (the
            # preconditioner of the scaled rows is the identity where no tree joins).
            scale = 1.0 / (dd + g_out)
            restart = r.shape[0] if r.shape[0] <= GMRES_FULL_MAX else GMRES_RESTART
            x = jsl.gmres(lambda x: scale * matvec(x), scale * r, x0=precondition(r), tol=tol, atol=0.0,
                          restart=restart, maxiter=self.maxiter, M=lambda q: precondition(q / scale),
                          solve_method="incremental")[0]
            return _converged(x, scale * (r - matvec(x)), scale * r, tol, "GMRES")

        # The transposed system (reverse mode) is solved the same way: block Jacobi is a
        # preconditioner of the transpose too (the trees' blocks are symmetric, the gaps'
        # part diagonal).
        return jax.lax.custom_linear_solve(op, b, solve=iterate, transpose_solve=iterate,
                                           symmetric=self.symmetric)


#: A solve whose residual ends above this many times ``tol`` (relative to the
#: right-hand side) stopped without converging: an error, not wrong voltages.
RESIDUAL_SLACK = 100.0


def _converged(x, residual, rhs, tol, method: str):
    """``x``, checked at run time: a relative ``residual`` (finite) above
    :data:`RESIDUAL_SLACK` × ``tol`` means the iteration stopped at ``maxiter`` far from
    the solution, which GMRES did without a word on strongly coupled chains (voltages
    300x too small). Non-finite values pass: a run gone non-finite is reported by
    ``simulate`` with what is known of its cause."""
    size = jnp.linalg.norm(rhs)
    rel = jnp.linalg.norm(residual) / jnp.where(size > 0, size, 1.0)
    return eqx.error_if(
        x, jnp.isfinite(rel) & (rel > RESIDUAL_SLACK * tol),
        f"gap-junction solve: {method} stopped without converging (relative residual above "
        f"{RESIDUAL_SLACK:g} x coupling_tol): the junctions are too strong for the membranes along a long "
        "chain (an ill-conditioned system). Use a shorter dt, weaker junctions or shorter chains, or float64 "
        "if the run is in float32 (jax.config.update('jax_enable_x64', True))")
