"""Train and evaluate one experiment: ``--config`` and ``--workdir``, nothing else.

    python -m experiments.main --config=configs/vanishing.py --workdir=runs/vanishing
    python -m experiments.main --config=configs/adding.py:smoke --workdir=/tmp/a \\
        --config.model.hidden=32

After training it writes the figures into <workdir>/figures/ and prints the final numbers,
where the figures are and the TensorBoard command.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file[:variant]",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for logs, checkpoints, figures")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)
    from experiments import report
    from seqjax import train
    try:
        train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except (ValueError, FileNotFoundError, train.NonFiniteLossError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    report.print_report(_WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
