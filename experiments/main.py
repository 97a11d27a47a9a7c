"""Train and evaluate one experiment: ``--config`` and ``--workdir``, nothing else.

    python -m experiments.main --config=configs/vanishing.py --workdir=runs/vanishing
    python -m experiments.main --config=configs/adding.py:smoke --workdir=/tmp/a \\
        --config.model.hidden=32

After training it writes the figures into <workdir>/figures/ and prints the final numbers,
where the figures are and the TensorBoard command. Installed, the same command is
``seqjax-train``; the flags and error handling live in ``seqjax/cli.py``.
"""

from seqjax import cli

if __name__ == "__main__":
    cli.run()
