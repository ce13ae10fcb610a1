"""Synapses of one kind from one population, run as one.

A network's projections (E→E, E→I, ...) are separate synapses, each with its own
kernel states, parameters and connections. Run one by one, each adds its own dozen or
two kernels to a time step: compile time and per-step overhead grow with the number of
projections (a network of eight populations all connected has 64). Synapses of one
class and static configuration reading the same presynaptic population do the same
arithmetic on different rows, so a network runs them as one synapse of that class
(:func:`merged`) whose rows are the members' rows one after the other: the time
constants and delays per row, the amplitudes, reversal potentials and postsynaptic
indices per connection, ``row_source`` naming each row's presynaptic neuron and
``pre_local`` each connection's row. The network keeps its kernel states as one (under
:func:`state_name`, the members' names joined by ``+``): one array per state across
the time loop, not one per synapse, which is what makes the loop's program smaller.
Records (a synapse's ``g``) and warnings stay per synapse. The arithmetic per row and
connection is the members' own; only the order of summing currents into a compartment
differs (rounding).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import units
from .synapse import AlphaSynapse, Exp2Synapse, ExpCurrentSynapse, ExpSynapse

#: The classes merged: their step uses only the fields ``_PARAMS`` lists (a subclass
#: may add its own, which merging would drop).
MERGEABLE = (ExpSynapse, AlphaSynapse, Exp2Synapse, ExpCurrentSynapse)


def group_key(synapse):
    """What synapses must share to run as one (None: runs alone)."""
    if type(synapse) not in MERGEABLE or (synapse.row_source is not None and not synapse.rows_of_side):
        return None
    return (type(synapse), synapse.pre[0], synapse.delivery, synapse.max_arrivals_per_step)


def groups(synapses) -> tuple:
    """``synapses`` as tuples run together, in order of each group's first member;
    a synapse that merges with none is a group of one."""
    out, where = [], {}
    for syn in synapses:
        key = group_key(syn)
        if key in where:
            out[where[key]].append(syn)
        else:
            if key is not None:
                where[key] = len(out)
            out.append([syn])
    return tuple(tuple(g) for g in out)


def _per_row(syn, value):
    """``value`` (a scalar or one per connection) on each of ``syn``'s rows: a
    scalar broadcast; one per connection is one per row, since a synapse with values
    per connection has a row per connection."""
    return jnp.broadcast_to(jnp.asarray(value), (syn._n_rows(),))


def _per_connection(syn, value):
    return jnp.broadcast_to(jnp.asarray(value), (syn.n_connections,))


def _offsets(sizes):
    out, total = [], 0
    for n in sizes:
        out.append(total)
        total += n
    return out


def merged(members):
    """One synapse of ``members``' class that does the work of all of them (they share
    :func:`group_key`); its rows and connections are theirs, in order."""
    first = members[0]
    row_params = set(first._TIME_CONSTANTS) | {"delay"}
    values = {}
    for name in first._PARAMS:
        spread = _per_row if name in row_params else _per_connection
        values[name] = jnp.concatenate([spread(m, getattr(m, name)) for m in members])
    row_offsets = _offsets([m._n_rows() for m in members])
    row_source, conn_row = [], []
    for m, off in zip(members, row_offsets):
        buffer_rows, conn_rows = m._buffer_rows(), m._connection_rows()
        row_source.append(jnp.arange(m._n_rows(), dtype=jnp.int32) if buffer_rows is None else buffer_rows)
        conn_row.append(off + (jnp.arange(m.n_connections, dtype=jnp.int32) if conn_rows is None else conn_rows))
    names = list(first._PARAMS) + ["pre_index", "post_index", "pre_local", "row_source"]
    new = [values[name] for name in first._PARAMS] + [
        jnp.concatenate([m.pre_index for m in members]),
        jnp.concatenate([m.post_index for m in members]),
        jnp.concatenate(conn_row),
        jnp.concatenate(row_source),
    ]
    out = eqx.tree_at(lambda s: [getattr(s, n) for n in names], first, new, is_leaf=lambda x: x is None)
    object.__setattr__(out, "rows_of_side", False)  # its rows are the members' (row_source), per-row values
    return out


def as_one(members):
    """The synapse that does the work of ``members`` (a group from :func:`groups`):
    the one member, or :func:`merged`."""
    return members[0] if len(members) == 1 else merged(members)


def state_name(members) -> str:
    """Where a network keeps the kernel states of ``members`` (a group from
    :func:`groups`) in ``state.events``: a lone synapse's name, a group's names
    joined by ``+``."""
    return "+".join(m.name for m in members)


def _row_slices(members):
    return [slice(off, off + m._n_rows()) for m, off in zip(members, _offsets([m._n_rows() for m in members]))]


def member_connections(members, values) -> dict:
    """``{name: values}``: each member's connections of the group's per-connection
    ``values`` (e.g. its conductances)."""
    offsets = _offsets([m.n_connections for m in members])
    return {m.name: values[..., off:off + m.n_connections] for m, off in zip(members, offsets)}


def member_sums(members, values):
    """Each member's sum over its rows of per-row ``values`` (e.g. its ``"late"``
    counts): on the host where they are known, else in one pass of the program."""
    sizes = [m._n_rows() for m in members]
    if units.is_concrete(values):
        values = np.asarray(values)
        return np.array([values[rows].sum() for rows in _row_slices(members)])
    if len(members) == 1:  # a synapse alone: its sum
        return jnp.sum(values)[None]
    ends = jnp.asarray(np.cumsum(sizes), dtype=jnp.int32)  # one entry per member
    # (Compared with every end at once: the default search is a loop of its own.)
    member = jnp.searchsorted(ends, jnp.arange(sum(sizes), dtype=jnp.int32), side="right", method="compare_all")
    return jax.ops.segment_sum(values, member, num_segments=len(members))
