r"""pt→en translation on Tatoeba (../shared/data/por_eng): LSTM encoder–decoder, with and
without Luong attention (a sweep over ``task.attention``; two runs, one after the other).

    python -m experiments.main --config=configs/translate_pt_en.py --workdir=runs/translate
    python -m experiments.export_examples runs/translate/attention=luong  # figures/translations.md

One run only: ``--config.sweep.task.attention='["luong"]'``. TED talks instead of Tatoeba
(needs internet and ``pip install -e .[tf]``): ``--config.task.source=ted_hrlr``.
Data: 13,222 pairs, seeded split 80/10/10 (train 10,578, validation 1,322, test 1,322; the
indices are in data/tfds/por_eng/seed0_v0.1_t0.1/1.0.0/split.json); word vocabularies
from the training split (words seen ≥ 2 times), sentences cut to 16 tokens (3.8% of the
English and 3.3% of the Portuguese ones are longer; BLEU is against the uncut reference).
Variants: ``:smoke`` (tests; Luong attention only), ``:cpu`` (default: bidirectional encoder,
H=128, embed 64, batch 64, 1500 steps, dropout 0.2), ``:gpu`` (H=256, embed 128, batch 128,
15k steps).
Expected (``:cpu``, seed 0, measured): test sacreBLEU (lower-cased) with Luong attention 11.5
greedy / 12.8 beam 4, without attention 2.3 / 2.7; 27 and 12 min on a 2-core CPU at
load average 8–11. Tatoeba sentences are short (mean 6.8 English words) but 10.6k training
pairs are far too few for fluent output: expect many <unk> and wrong content words (see the
tables).
"""

import ml_collections

from configs.caption_mnist import apply_variant
from seqjax.config import base_config


def get_config(variant: str = "cpu"):
    c = base_config()
    c.task.name = "translate"
    c.task.seq_len = 21            # unused by this task (lengths: src_max_len / tgt_max_len)
    c.task.eval_size = 1322        # the whole validation split in the teacher-forced eval
    c.task.source = "por_eng"
    c.task.split_seed = 0
    c.task.attention = "luong"
    c.task.src_max_len = 16
    c.task.tgt_max_len = 16
    c.task.min_count = 2
    c.task.beam = 4
    c.task.length_penalty = 0.6
    c.task.decode_eval_size = 256
    c.model.cell = "lstm"
    c.model.hidden = 128
    c.model.embed_dim = 64
    c.model.bidirectional = True
    c.model.dropout = 0.2
    c.train.num_steps = 1500
    c.train.batch_size = 64
    c.train.learning_rate = 3e-3
    c.train.schedule = "cosine"
    c.train.grad_clip = 1.0
    c.train.eval_every = 500
    c.train.checkpoint_every = 500
    c.train.diagnostics_every = 500
    c.train.log_every = 100
    c.sweep.task = {"attention": ["luong", "none"]}
    variant = variant or "cpu"
    apply_variant(c, variant)
    if variant == "smoke":
        c.task.eval_size = 16
        c.task.final_decode_size = 16
        c.train.diagnostics_every = 0
        c.sweep = ml_collections.ConfigDict()  # one run (attention); "none" is unit-tested
        c.task.src_max_len = 8
        c.task.tgt_max_len = 8
        c.model.dropout = 0.0
    elif variant in ("gpu", "tpu"):
        c.train.num_steps = 15000
        c.train.eval_every = 2000
        c.train.checkpoint_every = 2000
    return c
