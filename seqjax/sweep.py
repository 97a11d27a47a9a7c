"""Sweeps: the members of ``config.sweep`` × ``config.sweep_arms``, grouped for vmapping,
run one group after another, with a diverging member recorded instead of stopping the rest.

``config.sweep`` (``sweep.model.cell = ["rnn", "lstm"]``, ``sweep.seed = [0, 1, 2]``, ...)
runs every combination, each member logging into ``workdir/<member>``. Members that differ
only in fields that change array values, not shapes (``VMAPPABLE``: seed, learning rate,
forget bias, recurrent scale), can train together as ONE compiled program under
``jax.vmap`` (their shared checkpoints live in ``workdir/<group>``); the others run one
after another. How a group is trained is the caller's (``seqjax.train``) business.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import sys
from typing import Any, Callable

import jax
import ml_collections

from seqjax import config as config_lib
from seqjax import rundir
from seqjax.errors import NonFiniteLossError, SweepDivergedError
from seqjax.writer import atomic_write

# Sweep fields that change only array contents: members differing in these can be vmapped.
VMAPPABLE = ("seed", "train.learning_rate", "model.forget_bias", "model.recurrent_scale")

Member = tuple[str, Any]                       # (member name, member config)
Run = tuple[Any, str]                          # (config, run directory)


def _set(config, dotted: str, value) -> None:
    *path, key = dotted.split(".")
    node = config
    for part in path:
        node = node[part]
    node[key] = value


def _get(config, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def _safe(name: str) -> str:
    return name.replace(" ", "_").replace("/", "_")


def sweep_members(config) -> list[Member]:
    """[(member name, member config)]: ``sweep_arms`` × the cartesian product of ``sweep``."""
    sweep = config_lib.sweep_fields(config)
    arms = config_lib.parse_arms(config)
    if not sweep and not arms:
        return []
    fields = list(sweep)
    members = []
    for label, arm_fields in (arms.items() if arms else [(None, {})]):
        for values in itertools.product(*(sweep[f] for f in fields)):
            member = copy.deepcopy(config)
            with member.unlocked():
                member.sweep = ml_collections.ConfigDict()
                member.sweep_arms = ()
                for f, v in list(arm_fields.items()) + list(zip(fields, values)):
                    _set(member, f, v)
            parts = ([label] if label else []) + [
                f"{f.rsplit('.', 1)[-1]}={v}" for f, v in zip(fields, values)]
            members.append((_safe("-".join(parts)), member))
    return members


def vmap_sweep(config) -> bool:
    """Whether members that differ only in VMAPPABLE fields train as one vmapped program.

    ``train.vmap_sweep="auto"``: yes on accelerators, where one small run leaves the chip idle,
    and for init-only sweeps (one compile instead of one per member); not for training on
    CPU, where a step is already compute-bound and N sequential runs are as fast or faster
    (5 LSTM seeds: sequential 41.5 s, vmapped 46.5–61.5 s, benchmarks/RESULTS.md).
    """
    choice = config.train.vmap_sweep
    if choice == "auto":
        return jax.default_backend() != "cpu" or config.train.num_steps == 0
    return choice == "on"


def sweep_groups(config, members: list[Member]) -> list[tuple[str | None, list[Member]]]:
    """Members partitioned into groups that differ only in VMAPPABLE fields.

    Returns [(group name or None for a lone member, [(name, config), ...])], in order of
    first appearance. Without vmapping (``vmap_sweep(config)`` false) every member is alone.
    """
    fields = list(config_lib.sweep_fields(config))
    for arm in config_lib.parse_arms(config).values():
        fields += [f for f in arm if f not in fields]
    fixed = [f for f in fields if f not in VMAPPABLE]
    fixed += [f for f in ("model.cell", "model.kind") if f not in fixed]
    groups: dict[tuple, list] = {}
    for name, member in members:
        key = tuple(_get(member, f) for f in fixed)
        groups.setdefault(key, []).append((name, member))
    out = []
    for key, group in groups.items():
        if len(group) > 1 and vmap_sweep(config):
            label = "-".join(f"{f.rsplit('.', 1)[-1]}={v}" for f, v in zip(fixed, key))
            out.append(("vmap" + (f"-{label}" if label else ""), group))
        else:
            out.extend((None, [m]) for m in group)
    return out


def prepare_group_dir(group_dir: str, runs: list[Run], is_main: bool) -> None:
    """A vmapped group's checkpoints belong to exactly these members, in this order."""
    names = [os.path.basename(w) for _, w in runs]
    path = os.path.join(group_dir, rundir.GROUP_FILE)
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)["members"]
        if old != names:
            raise ValueError(f"{group_dir} holds the checkpoints of members {old}, not {names}; "
                             f"use another --workdir")
    elif is_main:
        os.makedirs(group_dir, exist_ok=True)
        atomic_write(path, json.dumps({"members": names}))


def arm_of(name: str, arms: dict) -> str | None:
    labels = [a for a in arms if name == _safe(a) or name.startswith(_safe(a) + "-")]
    return max(labels, key=len) if labels else None


def _write_sweep_file(config, workdir: str, members, groups) -> None:
    arms = config_lib.parse_arms(config)
    varied = list(config_lib.sweep_fields(config))
    atomic_write(os.path.join(workdir, rundir.SWEEP_FILE), json.dumps({
        "members": [name for name, _ in members],
        "sweep": config_lib.sweep_fields(config), "arms": arms,
        # what distinguishes each member: its arm and its swept values
        "member_fields": {name: {"arm": arm_of(name, arms)} |
                          {f: _get(mc, f) for f in varied} for name, mc in members},
        "vmapped_groups": {g: [n for n, _ in ms] for g, ms in groups if g}}, indent=2))


def _record_divergence(e: NonFiniteLossError, group_members, runs, is_main) -> dict:
    """{member name: record} for a group that stopped on NaN/Inf; diverged.json per member."""
    records = {}
    for (name, _), (_, d) in zip(group_members, runs):
        step = e.diverged.get(d)
        record = {"diverged_at": step, "error": str(e)} if step is not None else {
            "diverged_at": None, "stopped_with": sorted(e.diverged), "error": str(e)}
        records[name] = record
        if is_main:
            atomic_write(os.path.join(d, rundir.DIVERGED_FILE), json.dumps(record, indent=2))
    return records


def run_sweep(config, workdir: str, members: list[Member],
              train_group: Callable[[list[Run], str | None], list[dict]]) -> dict:
    """Every group of the sweep through ``train_group(runs, group_dir or None)``, which
    returns one summary per run. A group that stops on NaN/Inf is recorded and the others
    still run; ``SweepDivergedError`` at the end names the members that stopped."""
    is_main = jax.process_index() == 0
    os.makedirs(workdir, exist_ok=True)
    groups = sweep_groups(config, members)
    if is_main:
        _write_sweep_file(config, workdir, members, groups)
    summaries, failures = {}, []
    for group, group_members in groups:
        runs = [(mc, os.path.join(workdir, name)) for name, mc in group_members]
        for _, d in runs:  # a rerun that gets further replaces an earlier divergence
            if os.path.exists(os.path.join(d, rundir.DIVERGED_FILE)) and is_main:
                os.remove(os.path.join(d, rundir.DIVERGED_FILE))
        try:
            out = train_group(runs, group and os.path.join(workdir, group))
            summaries |= {name: s for (name, _), s in zip(group_members, out)}
        except NonFiniteLossError as e:
            # One diverging member must not cost the others: record it, go on, fail at the end.
            print(f"error: {e}\n(the sweep goes on with its other members)", file=sys.stderr,
                  flush=True)
            failures.append(str(e))
            summaries |= _record_divergence(e, group_members, runs, is_main)
    if is_main:
        atomic_write(os.path.join(workdir, rundir.SUMMARY_FILE),
                     json.dumps({"members": summaries}, indent=2))
    if failures:
        names = [n for n, s in summaries.items() if "error" in s]
        raise SweepDivergedError(
            f"{len(names)} of {len(summaries)} sweep members stopped on NaN/Inf ("
            f"{', '.join(names)}); every other member ran to the end and its results are in "
            f"{workdir}. First failure: {failures[0]}")
    return {"members": summaries}
