"""Gates: a worker's action that waits, mid-action, until the test lets it finish.

A race test gives a worker the action ``record_and_wait_for_the_gate``
(tests.testapp.actions) with a gate's `env`: the action records an
execution, then waits until the gate is opened. Everything the test does
between seeing the execution and opening the gate lands while the action
runs, which is what the test means to race, on any machine, however loaded;
no sleep is long enough for that.
"""

from pathlib import Path

#: The action that waits at a gate.
ACTION = 'record_and_wait_for_the_gate'


class Gate:
    """A file whose existence lets the actions waiting at it finish."""

    def __init__(self, path):
        self.path = Path(path)

    @property
    def env(self):
        """The environment a worker needs to wait at this gate."""
        return {'MODELQUEUE_TEST_GATE': str(self.path)}

    def open(self):
        self.path.touch()

    @property
    def is_open(self):
        return self.path.exists()
