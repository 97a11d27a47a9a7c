"""``python -m experiments.main`` that signals itself as the train step starts to compile.

``SEQJAX_DRILL_SIGNAL_AT_COMPILE=<signum>``: the process sends itself that signal right
before the first compile, so the signal is certain to arrive while XLA compiles.
Everything else is the real CLI.
"""

import os

from seqjax import cli, train


def signal_at_compile(signum: int) -> None:
    original = train.Trainer._compile_train

    def compile_train(self, stop):
        os.kill(os.getpid(), signum)
        return original(self, stop)
    train.Trainer._compile_train = compile_train


if __name__ == "__main__":
    signal_at_compile(int(os.environ["SEQJAX_DRILL_SIGNAL_AT_COMPILE"]))
    cli.run()
