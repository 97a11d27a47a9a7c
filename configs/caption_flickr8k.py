r"""Image captioning on Flickr8k: VGG-style CNN → LSTM decoder, five references per image.

    python -m experiments.main --config=configs/caption_flickr8k.py --workdir=runs/flickr8k \
        --config.data.raw_dir=/path/to/flickr8k
    python -m experiments.export_examples runs/flickr8k

``data.raw_dir`` holds Flickr8k.token.txt, the three Flickr_8k.*Images.txt split files and the
images (images/ or Flicker8k_Dataset/). Left empty it is ../shared/data/flickr8k, which has all
captions but only 100 images (81 train / 13 dev / 6 test): the builder builds what is there and
prints how many images it skipped. That copy is for tests and ``:smoke`` only; a model trained
on 81 images learns the caption prior, nothing more.
Variants: ``:smoke`` (tests; seconds), ``:cpu`` (64×64 images, CNN 16-32-64-128, H=256,
8000 steps; hours on 2 CPU cores with the full 6000 training images), ``:gpu`` (128×128,
VGG widths 64-128-256-512, H=512, 30k steps, batch 64).
Expected with the full data: BLEU-4 well below Show and Tell's COCO 27.7 (Vinyals et al.
2015) — a small CNN trained from scratch on 6000 images, not an ImageNet-pretrained one;
published Flickr8k BLEU-4 for from-scratch encoders is in the low teens. Not measured here
(the full image set is not available offline).
"""

from configs.caption_mnist import apply_variant
from seqjax.config import base_config


def get_config(variant: str = "cpu"):
    c = base_config()
    c.task.name = "caption_flickr8k"
    c.task.seq_len = 17            # unused by this task (captions: task.max_len)
    c.task.eval_size = 1000
    c.task.image_size = 64
    c.task.cnn_channels = (16, 32, 64, 128)
    c.task.cnn_convs_per_block = 2
    c.task.feature_dim = 256
    c.task.max_len = 16
    c.task.min_count = 2
    c.task.beam = 3
    c.task.decode_eval_size = 256
    c.model.cell = "lstm"
    c.model.hidden = 256
    c.model.embed_dim = 128
    c.model.dropout = 0.3
    c.train.num_steps = 8000
    c.train.batch_size = 32
    c.train.learning_rate = 1e-3
    c.train.schedule = "cosine"
    c.train.eval_every = 1000
    c.train.checkpoint_every = 1000
    c.train.diagnostics_every = 1000
    c.train.log_every = 100
    variant = variant or "cpu"
    apply_variant(c, variant)
    if variant == "smoke":
        c.task.image_size = 32
        c.task.cnn_channels = (4, 8)
        c.task.feature_dim = 16
        c.task.max_len = 8
        c.model.dropout = 0.0
    elif variant in ("gpu", "tpu"):
        c.task.image_size = 128
        c.task.cnn_channels = (64, 128, 256, 512)
        c.task.feature_dim = 512
        c.model.hidden = 512
        c.model.embed_dim = 256
        c.train.batch_size = 64
        c.train.num_steps = 30000
    return c
