"""Training-step throughput: seqjax lstm/gru/rnn against flax.linen.RNN and torch.nn.

One full training step — forward over the sequence, a per-timestep linear readout with a
mean-squared-error loss, backward, SGD update — jitted for JAX (compile time reported
apart), in tokens/s (batch × T per second). Contenders per cell:

    lstm  seqjax (impl ∈ --impls)  flax RNN(OptimizedLSTMCell)  flax RNN(LSTMCell)  torch.nn.LSTM
    gru   seqjax                   flax RNN(GRUCell)                                 torch.nn.GRU
    rnn   seqjax                   flax RNN(SimpleCell)                              torch.nn.RNN

Protocol:
1. every contender gets the SAME weights (seqjax's init, copied into flax and torch) and
   the same batch; the loss and every gradient are compared with seqjax impl="scan"
   before anything is timed (a mismatch stops the run);
2. timing is interleaved A B C A B C ... in one process (the order rotates every round);
   each timing block runs a contender for ≈ --block-s seconds;
3. per block the script records wall time, this process's CPU time, the CPU time used by
   OTHER processes during the block (from /proc/stat minus our own, in cores, "foreign")
   and os.getloadavg(); blocks with foreign > --max-foreign cores are "contended" and
   dropped; rounds continue until every contender has --min-clean clean blocks or
   --max-minutes pass (then the table says how many clean blocks it rests on);
   no round starts until other processes have used at most --max-foreign cores over 2 s
   of idling (the script sleeps meanwhile);
4. a 2048² float32 matmul is a contender too, so "% of peak" uses a peak measured under
   the same conditions.

    python benchmarks/throughput.py                       # CPU: lstm, gru, rnn at S, M, P
    python benchmarks/throughput.py --cells=lstm --sizes=S --min-clean=3
    python benchmarks/throughput.py --json=out.json

On a GPU backend the sizes default to the GPU set (torch on CUDA, plus
jax.experimental.rnn's cuDNN LSTM); that path is written but has not been run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import seqjax  # noqa: E402,F401  (registers the fast impls)
from seqjax import cells, convert  # noqa: E402
from seqjax import unroll as U  # noqa: E402

CPU_SIZES = {"S": dict(B=32, D=32, H=128, T=100), "M": dict(B=64, D=64, H=256, T=500),
             "P": dict(B=16, D=1, H=128, T=1000)}
GPU_SIZES = {f"G{b}x{h}x{t}": dict(B=b, D=h, H=h, T=t)
             for b in (64, 256) for h in (512, 1024) for t in (100, 1000)}
TINY_SIZES = {"XS": dict(B=4, D=4, H=8, T=10)}  # --dry-run checks of the script itself
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
LR = 0.01
DTYPES = ("float32", "bfloat16")


# --------------------------------------------------------------------------- machine, load


def machine_info() -> dict:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu_model": model, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "jax": jax.__version__,
            "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    try:
        import flax
        info["flax"] = flax.__version__
    except ImportError:
        pass
    try:
        import torch
        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def _proc_busy_ticks() -> int:
    """All CPUs' busy time (user+nice+system+irq+softirq+steal) in clock ticks."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal


class LoadProbe:
    """CPU used by other processes while a block runs, in cores; plus the load average."""

    def __init__(self):
        self.tick = os.sysconf("SC_CLK_TCK")

    def start(self):
        t = os.times()
        self._t0 = (time.perf_counter(), time.process_time(), _proc_busy_ticks(),
                    t.user + t.system)

    def stop(self) -> dict:
        wall0, cpu0, busy0, own0 = self._t0
        t = os.times()
        wall = time.perf_counter() - wall0
        own_ticks = (t.user + t.system - own0) * self.tick
        busy = _proc_busy_ticks() - busy0
        foreign = max(0.0, (busy - own_ticks) / self.tick / max(wall, 1e-9))
        return {"wall_s": wall, "cpu_s": time.process_time() - cpu0,
                "foreign_cores": foreign, "loadavg1": os.getloadavg()[0]}


# --------------------------------------------------------------------------- problem


def make_problem(cell_name, B, D, H, T, seed=0, dtype="float32"):
    """seqjax params (its own init), readout, inputs and targets, numpy arrays of ``dtype``
    (drawn in float32, then cast)."""
    cell = cells.get_cell(cell_name)
    k_p, k_x, k_y, k_w = jax.random.split(jax.random.key(seed), 4)
    p = cell.init(k_p, D, H)
    params = {"cell": p, "out": {"w": 0.1 * jax.random.normal(k_w, (H,)),
                                 "c": jnp.zeros(())}}
    xs = jax.random.normal(k_x, (B, T, D))
    ys = jax.random.normal(k_y, (B, T))
    cast = lambda a: np.asarray(jnp.asarray(a, dtype))
    return cell, jax.tree.map(cast, params), cast(xs), cast(ys)


def readout_loss(hs_BxTxH, out, ys_BxT):
    """mean over (b, t) of (h_t · w + c − y_t)²."""
    return jnp.mean((hs_BxTxH @ out["w"] + out["c"] - ys_BxT) ** 2)


def train_flops(cell_name, B, D, H, T) -> float:
    """Matmul FLOPs of one training step: 3 × the forward's 2·B·T·(D+H)·G·H."""
    return 3 * 2 * B * T * (D + H) * GATES[cell_name] * H


# --------------------------------------------------------------------------- contenders


class Contender:
    """name, step() (one blocking training step), loss_and_grads() in seqjax's naming."""

    kind = "jax"

    def describe(self):
        return {"name": self.name, "kind": self.kind, "compile_s": self.compile_s}


class JaxContender(Contender):
    def __init__(self, name, loss_fn, params, xs, ys):
        self.name = name
        opt = optax.sgd(LR)
        self.loss_fn = loss_fn

        def step(params, opt_state, xs, ys):
            loss, grads = jax.value_and_grad(loss_fn)(params, xs, ys)
            updates, opt_state = opt.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        self.params = jax.device_put(params)
        self.opt_state = opt.init(self.params)
        self.xs, self.ys = jax.device_put(xs), jax.device_put(ys)
        t = time.perf_counter()
        self._step = jax.jit(step, donate_argnums=(0, 1)).lower(
            self.params, self.opt_state, self.xs, self.ys).compile()
        self.compile_s = time.perf_counter() - t
        self.temp_mb = _temp_mb(self._step)

    def step(self):
        self.params, self.opt_state, loss = self._step(self.params, self.opt_state, self.xs,
                                                       self.ys)
        jax.block_until_ready(loss)

    def describe(self):
        return super().describe() | {"xla_temp_mb": self.temp_mb}


def _temp_mb(compiled):
    try:
        return compiled.memory_analysis().temp_size_in_bytes / 2 ** 20
    except Exception:  # noqa: BLE001  (not every backend reports it)
        return None


class SeqjaxContender(JaxContender):
    kind = "seqjax"

    def __init__(self, cell_name, cell, impl, remat, params, xs, ys):
        def loss_fn(p, xs, ys):
            _, hs = U.unroll(cell, p["cell"], xs, impl=impl, remat=remat)
            return readout_loss(hs, p["out"], ys)

        self.grads_fn = jax.jit(jax.value_and_grad(loss_fn))
        label = f"seqjax {impl}" + ("+remat" if remat else "")
        super().__init__(label, loss_fn, params, xs, ys)
        self.params0, self.xs0, self.ys0 = params, xs, ys

    def loss_and_grads(self):
        loss, g = self.grads_fn(self.params0, self.xs0, self.ys0)
        return float(loss), jax.tree.map(np.asarray, g)


# flax: the same weights, converted at the boundary (seqjax.convert).


FLAX_CELLS = {"lstm": ("OptimizedLSTMCell", "LSTMCell"), "gru": ("GRUCell",),
              "rnn": ("SimpleCell",)}


class FlaxContender(JaxContender):
    kind = "flax"

    def __init__(self, cell_name, flax_cell, params, xs, ys):
        import flax.linen as nn
        H = params["cell"]["W_h"].shape[0]
        rnn = nn.RNN(getattr(nn, flax_cell)(H))
        self.cell_name = cell_name

        def loss_fn(p, xs, ys):
            hs = rnn.apply({"params": {"cell": p["cell"]}}, xs)
            return readout_loss(hs, p["out"], ys)

        fparams = {"cell": convert.to_flax(cell_name, params["cell"]), "out": params["out"]}
        self.grads_fn = jax.jit(jax.value_and_grad(loss_fn))
        super().__init__(f"flax {flax_cell}", loss_fn, fparams, xs, ys)
        self.params0, self.xs0, self.ys0 = fparams, xs, ys

    def loss_and_grads(self):
        loss, g = self.grads_fn(self.params0, self.xs0, self.ys0)
        g = jax.tree.map(np.asarray, g)
        return float(loss), {"cell": convert.from_flax(self.cell_name, g["cell"]),
                             "out": g["out"]}


class TorchContender(Contender):
    kind = "torch"

    def __init__(self, cell_name, params, xs, ys, threads, device="cpu"):
        import torch
        torch.set_num_threads(threads)
        self.torch, self.cell_name, self.device = torch, cell_name, device
        p = params["cell"]
        D, H = p["W_x"].shape[0], p["W_h"].shape[0]
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell_name]
        self.dtype = getattr(torch, str(np.asarray(p["W_x"]).dtype))
        self.rnn = cls(D, H, batch_first=True).to(device=device, dtype=self.dtype)
        t = lambda a: torch.tensor(np.array(a, np.float32), device=device).to(self.dtype)
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(t(np.asarray(p["W_x"]).T))
            self.rnn.weight_hh_l0.copy_(t(np.asarray(p["W_h"]).T))
            self.rnn.bias_ih_l0.copy_(t(p["b"]))
            b_hh = np.zeros_like(np.asarray(p["b"]))
            if cell_name == "gru":
                b_hh[2 * H:] = np.asarray(p["b_hn"])
            self.rnn.bias_hh_l0.copy_(t(b_hh))
        self.w = t(params["out"]["w"]).requires_grad_()
        self.c = t(params["out"]["c"]).requires_grad_()
        self.xs, self.ys = t(xs), t(ys)
        self.opt = torch.optim.SGD(list(self.rnn.parameters()) + [self.w, self.c], lr=LR)
        self.name = f"torch {cls.__name__}" + (f" ({threads} thr)" if device == "cpu" else
                                               " (cuda)")
        self.threads = threads
        self._state = {k: v.detach().clone() for k, v in self.rnn.state_dict().items()}
        self._wc = (self.w.detach().clone(), self.c.detach().clone())
        t0 = time.perf_counter()
        self.step()
        self.compile_s = time.perf_counter() - t0  # first step (no compilation in eager torch)

    def _loss(self):
        hs, _ = self.rnn(self.xs)
        return ((hs @ self.w + self.c - self.ys) ** 2).mean()

    def step(self):
        self.opt.zero_grad(set_to_none=True)
        loss = self._loss()
        loss.backward()
        self.opt.step()
        if self.device != "cpu":
            self.torch.cuda.synchronize()

    def loss_and_grads(self):
        rnn = type(self.rnn)(self.rnn.input_size, self.rnn.hidden_size,
                             batch_first=True).to(device=self.device, dtype=self.dtype)
        rnn.load_state_dict(self._state)
        w, c = (a.clone().requires_grad_() for a in self._wc)
        hs, _ = rnn(self.xs)
        loss = ((hs @ w + c - self.ys) ** 2).mean()
        loss.backward()
        g = lambda a: a.grad.detach().float().cpu().numpy()
        H = rnn.hidden_size
        cell = {"W_x": g(rnn.weight_ih_l0).T, "W_h": g(rnn.weight_hh_l0).T,
                "b": g(rnn.bias_ih_l0)}
        if self.cell_name == "gru":
            cell["b_hn"] = g(rnn.bias_hh_l0)[2 * H:]
        return float(loss.detach()), {"cell": cell, "out": {"w": g(w), "c": g(c)}}


class JaxCudnnLSTM(JaxContender):
    """jax.experimental.rnn.lstm (cuDNN) with the same weights; GPU only (not yet run)."""

    kind = "cudnn"

    def __init__(self, params, xs, ys):
        from jax.experimental import rnn as jrnn
        p = params["cell"]
        D, H = p["W_x"].shape[0], p["W_h"].shape[0]
        B = xs.shape[0]

        def pack(c):
            return jnp.concatenate([c["W_x"].T.ravel(), c["W_h"].T.ravel(), c["b"],
                                    jnp.zeros_like(c["b"])])

        def loss_fn(p, xs, ys):
            z = jnp.zeros((1, B, H), xs.dtype)
            hs, _, _ = jrnn.lstm(xs, z, z, pack(p["cell"]), jnp.full((B,), xs.shape[1],
                                 jnp.int32), D, H, 1, 0.0, False)
            return readout_loss(hs, p["out"], ys)

        self.grads_fn = jax.jit(jax.value_and_grad(loss_fn))
        super().__init__("jax.experimental.rnn.lstm (cuDNN)", loss_fn, params, xs, ys)
        self.params0, self.xs0, self.ys0 = params, xs, ys

    def loss_and_grads(self):
        loss, g = self.grads_fn(self.params0, self.xs0, self.ys0)
        return float(loss), jax.tree.map(np.asarray, g)


class MatmulPeak(Contender):
    """A 2048² float32 matmul: the peak the "% of peak" column divides by."""

    kind = "peak"
    N = 2048

    def __init__(self):
        self.name = "matmul 2048²"
        a = jax.random.normal(jax.random.key(0), (self.N, self.N))
        self.a = a
        t = time.perf_counter()
        self._f = jax.jit(lambda a: a @ a).lower(a).compile()
        self.compile_s = time.perf_counter() - t
        self.flops = 2 * self.N ** 3

    def step(self):
        jax.block_until_ready(self._f(self.a))


# --------------------------------------------------------------------------- checks


def max_rel_err(a, b) -> float:
    """max |a − b| / max |b| over every leaf (b is the reference)."""
    errs = []
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if x.shape != y.shape:
            raise ValueError(f"shape mismatch {x.shape} vs {y.shape}")
        errs.append(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-30))
    return float(max(errs))


def check_agreement(reference, contenders, tol) -> dict:
    """Loss and gradient agreement of every contender with seqjax impl="scan"."""
    ref_loss, ref_grads = reference.loss_and_grads()
    report = {}
    for c in contenders:
        if c is reference or not hasattr(c, "loss_and_grads"):
            continue
        loss, grads = c.loss_and_grads()
        grads = {"cell": {k: grads["cell"][k] for k in ref_grads["cell"]},
                 "out": {k: grads["out"][k] for k in ref_grads["out"]}}
        err = max(abs(loss - ref_loss) / abs(ref_loss), max_rel_err(grads, ref_grads))
        report[c.name] = err
        if not err <= tol:
            raise SystemExit(f"NUMERICAL MISMATCH: {c.name} differs from seqjax scan by "
                             f"{err:.2e} (> {tol:.0e}); not timing")
    return report


# --------------------------------------------------------------------------- timing


def calibrate(c, block_s) -> int:
    """Steps per timing block so that a block lasts about block_s seconds."""
    t = time.perf_counter()
    c.step()
    dt = time.perf_counter() - t
    return max(1, int(round(block_s / max(dt, 1e-6))))


def foreign_load(seconds=2.0) -> float:
    """Cores used by other processes while this one sleeps for `seconds`."""
    probe = LoadProbe()
    probe.start()
    time.sleep(seconds)
    return probe.stop()["foreign_cores"]


def wait_for_quiet(max_foreign, deadline, log=print) -> bool:
    """Sleep (using no CPU) until other processes use at most max_foreign cores."""
    waited = 0
    while time.time() < deadline:
        f = foreign_load()
        if f <= max_foreign:
            return True
        if waited % 60 == 0:
            log(f"    waiting for a quiet machine: others use {f:.2f} cores")
        time.sleep(8)
        waited += 10
    return False


def time_interleaved(contenders, *, block_s, min_clean, max_rounds, max_minutes, max_foreign,
                     log=print):
    reps = {c.name: calibrate(c, block_s) for c in contenders}
    blocks = {c.name: [] for c in contenders}
    probe, t_end = LoadProbe(), time.time() + 60 * max_minutes
    for r in range(max_rounds):
        # "repeat when quiet": no round starts while others keep the cores busy
        if not wait_for_quiet(max_foreign, t_end, log) and r > 0:
            break
        order = contenders[r % len(contenders):] + contenders[:r % len(contenders)]
        for c in order:
            probe.start()
            for _ in range(reps[c.name]):
                c.step()
            b = probe.stop() | {"steps": reps[c.name], "round": r}
            b["step_s"] = b["wall_s"] / b["steps"]
            b["clean"] = b["foreign_cores"] <= max_foreign
            blocks[c.name].append(b)
        n_clean = min(sum(b["clean"] for b in v) for v in blocks.values())
        if r == 0 or (r + 1) % 5 == 0:
            log(f"    round {r + 1}: fewest clean blocks {n_clean}, foreign "
                f"{np.mean([v[-1]['foreign_cores'] for v in blocks.values()]):.2f} cores, "
                f"load {os.getloadavg()[0]:.1f}")
        if n_clean >= min_clean or time.time() > t_end:
            break
    return blocks


def summarise(blocks, tokens) -> dict:
    clean = [b for b in blocks if b["clean"]]
    use = clean if clean else blocks
    rates = [tokens / b["step_s"] for b in use]
    return {"tok_s_median": statistics.median(rates), "tok_s_min": min(rates),
            "tok_s_max": max(rates), "clean_blocks": len(clean), "blocks": len(blocks),
            "step_s_median": statistics.median(b["step_s"] for b in use),
            "cpu_per_step_s_median": statistics.median(b["cpu_s"] / b["steps"] for b in use),
            "foreign_cores_median": statistics.median(b["foreign_cores"] for b in use),
            "loadavg1_median": statistics.median(b["loadavg1"] for b in use)}


# --------------------------------------------------------------------------- main


def build(cell_name, size, args, on_gpu):
    s = {**CPU_SIZES, **GPU_SIZES, **TINY_SIZES}[size]
    cell, params, xs, ys = make_problem(cell_name, **s, dtype=args.dtype)
    contenders = []
    for spec in args.impls.split(","):
        impl, _, opt = spec.partition("+")
        impl = U.resolve_impl(impl, cell_name)
        contenders.append(SeqjaxContender(cell_name, cell, impl, opt == "remat", params, xs, ys))
    if "scan" not in [c.name.split()[1] for c in contenders]:
        reference = SeqjaxContender(cell_name, cell, "scan", False, params, xs, ys)
    else:
        reference = next(c for c in contenders if c.name == "seqjax scan")
    if "flax" in args.peers:
        contenders += [FlaxContender(cell_name, fc, params, xs, ys)
                       for fc in FLAX_CELLS[cell_name]]
    if "torch" in args.peers:
        for thr in [int(t) for t in str(args.torch_threads).split(",")]:
            contenders.append(TorchContender(cell_name, params, xs, ys, thr,
                                             device="cuda" if on_gpu else "cpu"))
    if on_gpu and cell_name == "lstm":
        contenders.append(JaxCudnnLSTM(params, xs, ys))
    return s, reference, contenders


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", default="lstm,gru,rnn")
    ap.add_argument("--sizes", default=None, help="S,M,P on CPU; the G* set on GPU; any "
                    "named size on either; XS (tiny) checks the script")
    ap.add_argument("--impls", default="auto,scan",
                    help="seqjax impls; 'auto' = seqjax.unroll.resolve_impl('auto', cell); "
                         "'+remat' suffix")
    ap.add_argument("--peers", default="flax,torch")
    ap.add_argument("--torch-threads", default=str(os.cpu_count()),
                    help="torch.set_num_threads; a list (e.g. 2,1) adds one contender each")
    ap.add_argument("--block-s", type=float, default=0.4)
    ap.add_argument("--min-clean", type=int, default=7)
    ap.add_argument("--max-rounds", type=int, default=60)
    ap.add_argument("--max-minutes", type=float, default=15.0,
                    help="per (cell, size), waiting for quiet included")
    ap.add_argument("--max-foreign", type=float, default=0.25,
                    help="drop blocks during which other processes used more cores")
    ap.add_argument("--dtype", default="float32", choices=DTYPES,
                    help="parameters, inputs and targets of every contender (torch's too)")
    ap.add_argument("--tol", type=float, default=2e-3,
                    help="agreement with seqjax scan (in the same dtype) required to time")
    ap.add_argument("--json", default=None)
    ap.add_argument("--render", default=None, metavar="JSON",
                    help="print the markdown table of a results file and exit")
    args = ap.parse_args(argv)
    if args.render:
        with open(args.render) as f:
            print(markdown(json.load(f)))
        return None

    on_gpu = jax.default_backend() == "gpu"
    sizes = args.sizes.split(",") if args.sizes else list(GPU_SIZES if on_gpu else CPU_SIZES)
    known = {**CPU_SIZES, **GPU_SIZES, **TINY_SIZES}
    if any(size not in known for size in sizes):
        ap.error(f"--sizes={args.sizes}: each must be one of {', '.join(known)}")
    info = machine_info()
    print(f"# {info['cpu_model']}, {info['cores']} cores, {info['backend']}; {info['date']}")
    print(f"# jax {info['jax']}, flax {info.get('flax')}, torch {info.get('torch')}; "
          f"default_impl={U.resolve_impl('auto', 'lstm')}")
    peak = MatmulPeak()
    results = []
    for cell_name in args.cells.split(","):
        for size in sizes:
            s, reference, contenders = build(cell_name, size, args, on_gpu)
            agree = check_agreement(reference, contenders, args.tol)
            print(f"\n## {cell_name} {size} {s}: agreement with seqjax scan (max rel err): "
                  + ", ".join(f"{k} {v:.1e}" for k, v in agree.items()))
            blocks = time_interleaved(contenders + [peak], block_s=args.block_s,
                                      min_clean=args.min_clean, max_rounds=args.max_rounds,
                                      max_minutes=args.max_minutes,
                                      max_foreign=args.max_foreign)
            tokens = s["B"] * s["T"]
            pk = summarise(blocks[peak.name], 1.0)
            peak_flops = peak.flops * pk["tok_s_median"]
            rows = {}
            for c in contenders:
                row = summarise(blocks[c.name], tokens) | c.describe()
                row["pct_peak"] = 100 * train_flops(cell_name, **s) / row["step_s_median"] \
                    / peak_flops
                rows[c.name] = row
            results.append({"cell": cell_name, "size": size, "shape": s, "dtype": args.dtype,
                            "agreement": agree,
                            "peak_gflops": peak_flops / 1e9, "peak": pk, "rows": rows,
                            "raw_blocks": blocks})
            print_table(cell_name, size, rows, pk, peak_flops)
    out = {"machine": info, "args": vars(args), "default_impl": U.resolve_impl("auto", "lstm"),
           "results": results}
    path = args.json or os.path.join(REPO, "benchmarks", "results", "throughput_"
                                     f"{info['backend']}_{info['date'][:10]}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=1, default=float)
    print(f"\nwrote {path}")
    return out


def markdown(out) -> str:
    """The RESULTS.md table of a results file: one row per (cell, size, contender)."""
    lines = ["| cell | size | contender | tok/s median [min – max] | % of peak | "
             "clean blocks | foreign cores | ÷ flax | ÷ torch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for res in out["results"]:
        rows = res["rows"]
        flax = [n for n in rows if n.startswith("flax")]
        torch = [n for n in rows if n.startswith("torch")]
        size = res["size"] + ("" if res.get("dtype", "float32") == "float32" else
                              f" {res['dtype']}")
        for n, r in rows.items():
            ratio = lambda peers: " / ".join(
                f"{r['tok_s_median'] / rows[p]['tok_s_median']:.2f}" for p in peers)
            mine = n.startswith("seqjax")
            lines.append(
                f"| {res['cell']} | {size} | {n} | {r['tok_s_median']:,.0f} "
                f"[{r['tok_s_min']:,.0f} – {r['tok_s_max']:,.0f}] | {r['pct_peak']:.0f}% | "
                f"{r['clean_blocks']}/{r['blocks']} | {r['foreign_cores_median']:.2f} | "
                f"{ratio(flax) if mine else ''} | {ratio(torch) if mine else ''} |")
        lines.append(f"| {res['cell']} | {size} | (matmul 2048² peak) | "
                     f"{res['peak_gflops']:.0f} GFLOP/s | | {res['peak']['clean_blocks']}/"
                     f"{res['peak']['blocks']} | | | |")
    return "\n".join(lines)


def print_table(cell_name, size, rows, pk, peak_flops):
    seq = [n for n in rows if n.startswith("seqjax")]
    peers = [n for n in rows if not n.startswith("seqjax")]
    print(f"{'contender':34s} {'tok/s median':>13s} {'[min – max]':>23s} {'%peak':>6s} "
          f"{'clean':>7s} {'compile s':>9s}  " + "  ".join(f"÷{p.split()[1][:12]}" for p in peers))
    for n, r in rows.items():
        ratios = "  ".join(f"{r['tok_s_median'] / rows[p]['tok_s_median']:>6.2f}x"
                           for p in peers) if n in seq else ""
        print(f"{n:34s} {r['tok_s_median']:13,.0f} [{r['tok_s_min']:9,.0f} – "
              f"{r['tok_s_max']:9,.0f}] {r['pct_peak']:5.1f}% {r['clean_blocks']:3d}/"
              f"{r['blocks']:<3d} {r['compile_s']:9.2f}  {ratios}")
    print(f"{'(matmul 2048² peak)':34s} {peak_flops / 1e9:10.1f} GFLOP/s  clean "
          f"{pk['clean_blocks']}/{pk['blocks']}; median foreign load of kept blocks "
          + ", ".join(f"{n.split()[0]} {r['foreign_cores_median']:.2f}" for n, r in
                      list(rows.items())[:1]) + " cores")


if __name__ == "__main__":
    main()
