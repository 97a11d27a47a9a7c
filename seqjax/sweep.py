"""Sweeps: the members of ``config.sweep`` × ``config.sweep_arms``, grouped for vmapping,
run one group after another, with a diverging member recorded instead of stopping the rest.

``config.sweep`` (``sweep.model.cell = ["rnn", "lstm"]``, ``sweep.seed = [0, 1, 2]``, ...)
runs every combination, each member logging into ``workdir/<member>``. Members that differ
only in fields that change array values, not shapes (``VMAPPABLE``: seed, learning rate,
forget bias, recurrent scale), can train together as ONE compiled program under
``jax.vmap`` (their shared checkpoints live in ``workdir/<group>``); the others run one
after another. How a group is trained is the caller's (``seqjax.train``) business, and so
is where: here, one group after another, or as jobs of a launcher (``seqjax.launch``:
worker processes, a SLURM array job) whose outcomes are recorded here as they arrive.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import sys
import time
from typing import Any, Callable

import jax
import ml_collections

from seqjax import config as config_lib
from seqjax import rundir
from seqjax.chrono import fmt_duration
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


class SweepFailedError(SweepDivergedError):
    """Some sweep members failed (an error other than NaN/Inf, or a job that died); the
    other members ran to the end."""


class _Progress:
    """"member k of N" and the sweep's ETA: the wall time per member finished in this
    process so far, times the members still to run (parallel jobs shorten it by
    themselves: more members finish per second)."""

    def __init__(self, total: int):
        self.total, self.done, self.here = total, 0, 0
        self.start = time.perf_counter()

    def skip(self, names: list[str]) -> None:
        self.done += len(names)
        print(f"[sweep] {len(names)} of {self.total} members already finished, not rerun: "
              f"{', '.join(names)}", flush=True)

    def eta(self) -> str:
        if not self.here:
            return "known after the first member"
        rate = (time.perf_counter() - self.start) / self.here
        return f"~{fmt_duration(rate * (self.total - self.done))}"

    def starting(self, names: list[str], label: str) -> None:
        k = self.done + 1
        which = f"member {k}" if len(names) == 1 else f"members {k}-{k + len(names) - 1}"
        print(f"[sweep] {which} of {self.total}: {label} (eta for the sweep {self.eta()})",
              flush=True)

    def finished(self, names: list[str], label: str, how: str, announce: bool) -> None:
        self.done += len(names)
        self.here += len(names)
        if announce:
            print(f"[sweep] {self.done} of {self.total} members done: {label} {how} "
                  f"(eta for the sweep {self.eta()})", flush=True)


def finished_summaries(runs: list[Run]) -> list[dict] | None:
    """The summaries of runs that all ended (summary.json at train.num_steps, same config,
    no resume=False): a rerun of the sweep skips them. None if any has work left."""
    out = []
    for config, d in runs:
        try:
            with open(os.path.join(d, rundir.SUMMARY_FILE)) as f:
                summary = json.load(f)
            with open(os.path.join(d, rundir.CONFIG_FILE)) as f:
                old = json.load(f)
        except (OSError, json.JSONDecodeError):
            return None
        if (not config.train.resume or summary.get("steps") != config.train.num_steps
                or config_lib.diff(old, config.to_dict())):
            return None
        out.append(summary)
    return out


def job_outcome(train_group, runs: list[Run], group_dir: str | None) -> dict:
    """One job's outcome as ``run_sweep`` records it: {"summaries": [...]} or, on NaN/Inf,
    {"diverged": {dir: step}, "error": message}; anything else raises."""
    try:
        return {"summaries": train_group(runs, group_dir)}
    except NonFiniteLossError as e:
        return {"diverged": e.diverged, "error": str(e)}


def _in_process(jobs, train_group, progress: _Progress):
    """(job index, outcome) of each job, trained here one after another."""
    for i, (runs, group_dir, label) in enumerate(jobs):
        progress.starting([os.path.basename(d) for _, d in runs], label)
        yield i, job_outcome(train_group, runs, group_dir)


def _record(out: dict, group_members, runs, is_main, summaries, failures, failed) -> str:
    """One job's outcome into ``summaries``; returns how it ended."""
    names = [name for name, _ in group_members]
    if "summaries" in out:
        summaries |= dict(zip(names, out["summaries"]))
        return "finished"
    if "diverged" in out:
        # One diverging member must not cost the others: record it, go on, fail at the end.
        print(f"error: {out['error']}\n(the sweep goes on with its other members)",
              file=sys.stderr, flush=True)
        failures.append(out["error"])
        error = NonFiniteLossError(out["error"], diverged=out["diverged"])
        summaries |= _record_divergence(error, group_members, runs, is_main)
        return "stopped on NaN/Inf"
    print(f"error: sweep member(s) {', '.join(names)} failed: {out['failed']} (log: "
          f"{out['log']})\n(the sweep goes on with its other members)", file=sys.stderr,
          flush=True)
    failed.append(f"{', '.join(names)}: {out['failed']}")
    summaries |= {name: {"failed": out["failed"], "error": out["failed"], "log": out["log"]}
                  for name in names}
    return "failed"


def run_sweep(config, workdir: str, members: list[Member],
              train_group: Callable[[list[Run], str | None], list[dict]],
              run_jobs: Callable | None = None) -> dict:
    """Every group of the sweep through ``train_group(runs, group_dir or None)``, which
    returns one summary per run, or, given ``run_jobs`` (seqjax.launch: ``local`` worker
    processes or a ``slurm`` array job), as its jobs: ``run_jobs([(runs, group_dir)],
    workdir)`` yields (job index, outcome) as they end. Groups whose members all finished earlier
    are skipped. A group that stops on NaN/Inf (or, launched, fails) is recorded and the
    others still run; ``SweepDivergedError`` at the end names the members that stopped."""
    is_main = jax.process_index() == 0
    os.makedirs(workdir, exist_ok=True)
    groups = sweep_groups(config, members)
    if is_main:
        _write_sweep_file(config, workdir, members, groups)
    summaries, failures, failed, skipped, jobs = {}, [], [], [], []
    progress = _Progress(len(members))
    for group, group_members in groups:
        runs = [(mc, os.path.join(workdir, name)) for name, mc in group_members]
        done = finished_summaries(runs)
        if done is not None:
            summaries |= {name: s for (name, _), s in zip(group_members, done)}
            skipped += [name for name, _ in group_members]
            continue
        for _, d in runs:  # a rerun that gets further replaces an earlier divergence
            if os.path.exists(os.path.join(d, rundir.DIVERGED_FILE)) and is_main:
                os.remove(os.path.join(d, rundir.DIVERGED_FILE))
        jobs.append((group, group_members, runs))
    if skipped:
        progress.skip(skipped)
    launched = run_jobs is not None
    specs = [(runs, group and os.path.join(workdir, group), group or group_members[0][0])
             for group, group_members, runs in jobs]
    outcomes = (run_jobs([s[:2] for s in specs], workdir) if launched
                else _in_process(specs, train_group, progress))
    for i, out in outcomes:
        group, group_members, runs = jobs[i]
        how = _record(out, group_members, runs, is_main, summaries, failures, failed)
        progress.finished([n for n, _ in group_members], specs[i][2], how, launched)
    order = [name for _, group_members in groups for name, _ in group_members]
    summaries = {name: summaries[name] for name in order if name in summaries}
    if is_main:
        atomic_write(os.path.join(workdir, rundir.SUMMARY_FILE),
                     json.dumps({"members": summaries}, indent=2))
    _raise_failures(summaries, failures, failed, workdir)
    return {"members": summaries}


def _raise_failures(summaries: dict, failures: list, failed: list, workdir: str) -> None:
    names = [n for n, s in summaries.items() if "error" in s]
    if failed:
        raise SweepFailedError(
            f"{len(names)} of {len(summaries)} sweep members failed or stopped on NaN/Inf ("
            f"{', '.join(names)}); every other member ran to the end and its results are in "
            f"{workdir}. Failed: {'; '.join(failed)}" + (
                f". First NaN/Inf: {failures[0]}" if failures else ""))
    if failures:
        hit = [n for n in names if not summaries[n].get("stopped_with")]
        along = [n for n in names if summaries[n].get("stopped_with")]
        also = (f"; {len(along)} more trained in one vmapped program with them and stopped at "
                f"the same step ({', '.join(along)})") if along else ""
        raise SweepDivergedError(
            f"{len(hit)} of {len(summaries)} sweep members stopped on NaN/Inf ("
            f"{', '.join(hit)}){also}; every other member ran to the end and its results are in "
            f"{workdir}. First failure: {failures[0]}")
