"""What the captioning and translation tasks share: the masked loss, batched decoding with
a fixed chunk size (one compile per decoder), BLEU, and the pictures a person looks at."""

from __future__ import annotations

import functools
import io

import jax
import jax.numpy as jnp
import numpy as np
import optax

from seqjax import seq2seq, text

DECODE_CHUNK = 64


def masked_ce(logits_BxTxV, targets_BxT):
    """(mean cross entropy over non-PAD targets, {"ce", "token_accuracy"})."""
    mask = (targets_BxT != text.PAD).astype(jnp.float32)
    ce_BxT = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, targets_BxT)
    n = jnp.maximum(jnp.sum(mask), 1.0)
    ce = jnp.sum(ce_BxT * mask) / n
    hit = (jnp.argmax(logits_BxTxV, -1) == targets_BxT).astype(jnp.float32)
    return ce, {"ce": ce, "token_accuracy": jnp.sum(hit * mask) / n}


class Decoder:
    """Jitted greedy/beam decoding of a model over many examples in chunks of DECODE_CHUNK."""

    def __init__(self, model, *, max_len: int, beam: int, length_penalty: float):
        self.model = model
        self.fns = {}
        for k in sorted({1, beam}):
            self.fns[k] = jax.jit(functools.partial(
                seq2seq.decode, model, max_len=max_len, beam=k, length_penalty=length_penalty))

    def __call__(self, params, arrays: dict[str, np.ndarray], beam: int) -> np.ndarray:
        n = len(next(iter(arrays.values())))
        out = []
        for start in range(0, n, DECODE_CHUNK):
            idx = np.arange(start, start + DECODE_CHUNK) % n  # pad the last chunk by wrapping
            chunk = {k: v[idx] for k, v in arrays.items()}
            with jax.numpy_dtype_promotion("standard"):
                toks, _ = self.fns[beam](params, chunk)
            out.append(np.asarray(toks)[:min(DECODE_CHUNK, n - start)])
        return np.concatenate(out, 0)


def caption_grid(images: np.ndarray, generated: list[str], references: list[str],
                 good: list[bool], title: str, per_side: int = 6) -> np.ndarray:
    """An RGB (H, W, 3) uint8 picture: successes on the left, failures on the right, each
    image with its generated caption (green: success, red: failure) and a reference."""
    import matplotlib  # heavy (≈0.7 s): only the pictures need it
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [i for i, g in enumerate(good) if g][:per_side]
    bad = [i for i, g in enumerate(good) if not g][:per_side]
    rows = max(len(ok), len(bad), 1)
    fig, axes = plt.subplots(rows, 2, figsize=(9, 2.1 * rows), squeeze=False)
    for col, (picked, label, colour) in enumerate(((ok, "successes", "green"),
                                                   (bad, "failures", "red"))):
        axes[0, col].set_title(f"{label} ({len(picked)} shown)", fontsize=11)
        for r in range(rows):
            ax = axes[r, col]
            ax.axis("off")
            if r >= len(picked):
                continue
            i = picked[r]
            img = images[i]
            ax.imshow(img if img.ndim == 3 and img.shape[-1] == 3 else img.squeeze(),
                      cmap=None if img.ndim == 3 and img.shape[-1] == 3 else "gray",
                      vmin=0, vmax=1)
            ax.text(1.05, 0.62, f"model: {generated[i]}", transform=ax.transAxes, fontsize=8,
                    color=colour, wrap=True, va="center")
            ax.text(1.05, 0.3, f"truth: {references[i]}", transform=ax.transAxes, fontsize=8,
                    color="black", wrap=True, va="center")
    fig.suptitle(title, fontsize=12)
    fig.subplots_adjust(left=0.01, right=0.7, wspace=1.6, top=1 - 0.5 / rows - 0.02)
    return _to_rgb(fig)


def _to_rgb(fig) -> np.ndarray:
    import matplotlib.pyplot as plt  # heavy (≈0.7 s): only the pictures need it
    from PIL import Image
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def markdown_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def sentence_bleu(hyp: str, refs: list[str]) -> float:
    from sacrebleu.metrics import BLEU  # evaluation only: kept out of the import of tasks
    return float(BLEU(effective_order=True, lowercase=True).sentence_score(hyp, refs).score)
