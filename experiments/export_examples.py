"""Write the examples a run logged to TensorBoard (task ``examples``: misclassified digits and
reviews, forecast plots) as files, from the workdir alone (never retrains).

    python -m experiments.export_examples runs/airline [more workdirs...] [--step=-1]

For each ``image/<name>`` tag: ``<workdir>/figures/<name>.png``; for each ``text/<name>`` tag:
``<workdir>/figures/<name>.md``. ``--step`` picks the logged step (default: the last one).
"""

from __future__ import annotations

import os

from absl import app, flags

_STEP = flags.DEFINE_integer("step", -1, "logged step to export (-1: the last)")


def export(workdir: str, step: int = -1) -> list[str]:
    """The paths written for ``workdir``'s image/ and text/ examples at ``step``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(workdir, size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    out_dir = os.path.join(workdir, "figures")
    os.makedirs(out_dir, exist_ok=True)
    written = []

    def pick(events):
        if step < 0:
            return events[-1]
        hits = [e for e in events if e.step == step]
        if not hits:
            raise ValueError(f"{workdir}: no example logged at step {step}; logged steps: "
                             f"{sorted({e.step for e in events})}")
        return hits[-1]

    for tag in tags.get("images", []):
        if tag.startswith("image/"):
            path = os.path.join(out_dir, tag.split("/", 1)[1] + ".png")
            with open(path, "wb") as f:
                f.write(pick(acc.Images(tag)).encoded_image_string)
            written.append(path)
    for tag in tags.get("tensors", []):
        if tag.startswith("text/"):
            event = pick(acc.Tensors(tag))
            text = b"\n".join(event.tensor_proto.string_val).decode("utf-8")
            path = os.path.join(out_dir, tag.split("/", 1)[1].split("/")[0] + ".md")
            with open(path, "w") as f:
                f.write(text + "\n")
            written.append(path)
    return written


def main(argv):
    if len(argv) < 2:
        raise app.UsageError("give one or more run directories")
    for workdir in argv[1:]:
        for path in export(workdir, _STEP.value):
            print(path)


if __name__ == "__main__":
    app.run(main)
