"""What the parts of a worker ask of each other, as typing protocols.

:class:`~modelqueue.worker.loop.Worker` implements both. The thread pool
(:mod:`modelqueue.worker.threads`) and the supervising parent
(:mod:`modelqueue.worker.supervisor`) depend on these protocols, not on the
loop, so imports go one way: the loop imports them, never the reverse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import datetime as dt

    from django.db.models import QuerySet

    from ..retries import Delay
    from .heartbeat import Heartbeat
    from .timelimit import TimeLimit

__all__ = ['BatchedWorker', 'Budget', 'PooledWorker', 'SupervisedWorker']


class Budget(Protocol):
    """How many more tasks may start (``--max-tasks``), shared by processes."""

    def take(self) -> bool:
        """Take one task from the budget; False when none is left."""

    def give_back(self) -> None:
        """Return a task taken for a claim that found no row."""

    def left(self) -> int | None:
        """How many tasks are left to take; None: no limit."""


class PooledWorker(Protocol):
    """The worker that each thread of a :class:`~modelqueue.worker.threads.ThreadPool` runs."""

    budget: Budget
    burst: bool
    sleep: float
    #: Set when an operator quieted the worker: no thread claims a row.
    quieted: bool

    @property
    def stopping(self) -> bool:
        """Whether a signal asked the worker to stop."""

    def should_stop(self) -> bool:
        """Whether to claim no more rows: stopping, or the parent is gone."""

    def holds_claim(self) -> Any | None:
        """The row this thread claimed with its last completion, not yet run."""

    def database_error(self, error: BaseException, failures: int) -> float | None:
        """Log the `failures`-th database error in a row of this thread;
        return the pause before trying again, or None to stop the pool."""

    def run_one(
        self,
        on_claim: Callable[[], None] | None = None,
        claim_next: Callable[[], bool] | None = None,
    ) -> bool:
        """Run one task in this thread; return whether a row was due."""


class SupervisedWorker(Protocol):
    """The worker that each child process of a supervisor runs."""

    #: The status the child exits with once run() returns (0: by design).
    exit_status: int
    #: Set when the process reached a limit of its own and should be replaced.
    recycle: bool
    #: How long an action may run; the parent kills a child stuck past it.
    time_limit: TimeLimit

    def become_child(self, parent_pid: int) -> None:
        """Be one of a supervisor's children: stop when the parent is gone,
        leave a second signal to the parent."""

    def run(self) -> int:
        """Process tasks until stopped; return how many."""


class BatchedWorker(Protocol):
    """The worker whose batches a :class:`~modelqueue.worker.batch.Batch` claims, runs and completes."""

    queryset: QuerySet[Any]
    attname: str
    retry: int
    timeout: dt.timedelta
    delay: Delay
    budget: Budget
    quieted: bool
    #: Called by run() when the database refused the action's values.
    on_not_stored: Callable[[Any, Any], None] | None

    @property
    def stopping(self) -> bool:
        """Whether a signal asked the worker to stop."""

    @property
    def heartbeat(self) -> Heartbeat | None:
        """The worker's heartbeat, told of the rows a batch holds."""

    def should_stop(self) -> bool:
        """Whether to claim no more rows."""

    def action_call(self, on_claim: Callable[[], None] | None = None) -> Any:
        """The action wrapped (an :class:`~modelqueue.worker.loop.ActionCall`)."""

    def after_action(self, task: Any) -> Callable[[], object] | None:
        """What to call once `task`'s outcome is written."""

    def count_for_limits(self) -> None:
        """Count a task against the process's limits."""

    def describe_task(self, task: Any) -> str:
        """A task in the worker's log lines."""
