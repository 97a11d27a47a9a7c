"""Same config and seed: bit-identical metrics.jsonl across two CLI runs; another seed differs.

(Bit-identical across a resume is what the kill and signal drills check: each compares its
resumed run with reference run ``a``.) Excluded from every comparison: ``train/steps_per_sec``
(wall-clock: it measures the machine). summary.json is not compared: its ``compile_s`` and
``wall_time_s`` are wall-clock too; its ``final_eval`` is the step-40 eval row, compared here.
"""

import json

from tests.reliability import drill


def test_same_seed_gives_bit_identical_metrics(reference):
    a, b = (reference[n]["workdir"] for n in "ab")
    lines_a, lines_b = drill.raw_metrics_lines(a), drill.raw_metrics_lines(b)
    assert len(lines_a) == len(lines_b) > 10
    for la, lb in zip(lines_a, lines_b):
        ra, rb = json.loads(la), json.loads(lb)
        differing = {k for k in ra.keys() | rb.keys() if ra.get(k) != rb.get(k)}
        assert differing <= set(drill.WALL_CLOCK_FIELDS), (ra["step"], differing)
    # The floats are written with repr (shortest exact form): equal text is equal bits.
    assert drill.metrics(a) == drill.metrics(b)
    ea, eb = (json.load(open(f"{w}/summary.json"))["final_eval"] for w in (a, b))
    assert ea == eb


def test_another_seed_gives_other_metrics(reference):
    a, c = drill.metrics(reference["a"]["workdir"]), drill.metrics(reference["c"]["workdir"])
    assert [r["step"] for r in c] == [0, 2] == [r["step"] for r in a[:2]]
    assert a[0]["eval/mse"] != c[0]["eval/mse"]          # other initial parameters
    assert a[0]["grad/hidden_norms"] != c[0]["grad/hidden_norms"]
    assert a[1]["train/loss"] != c[1]["train/loss"]      # other batches (and parameters)
