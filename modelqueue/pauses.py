"""Pausing a queue: a row in the database that run() reads inside its claim.

:func:`pause` writes a :class:`modelqueue.models.QueuePause` row for a
model's queue field; :func:`resume` deletes it. The claim (every database,
every claim path: see :mod:`modelqueue.claim`) chooses its row among the
due rows of a queue *for which no such row exists*: one more ``NOT EXISTS``
in the statement that claims, not one more statement per claim. So from
the moment the pause commits, no process claims from the queue: a row a
worker already holds finishes, other queues go on, and since the pause is a
row, it outlives restarts. :func:`resume` deletes the row and, on
PostgreSQL, sends the queue's wake-up notification, so that idle workers
claim at once instead of at their next poll.

A queue's pause is found by its model's content type (by app label and
model name, in a subquery, so the claim looks nothing up beforehand and
knows no id that a flush could change), its field's name and a queue name:
empty for a model's queue. A model may define ``modelqueue_pause_name()``,
a class method returning an expression of its row, to be paused in parts:
the Django Tasks backend's table pauses a queue of one backend alias so
(:mod:`modelqueue.tasks.pauses`); its rows are paused too by a pause with an
empty queue name, the whole table's.

Where the ``modelqueue`` app is not installed, or its table is missing from
the queue's database (the migrations not applied), a claim has no pause to
read and reads none: this is decided once per process and database, at the
first claim (restart workers after applying the migrations).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.db import IntegrityError, connections, router, transaction
from django.db.models import Exists, Q

from .schema import missing_tables
from .status import now
from .validation import check_status_field, concrete_field
from .wakeup import channel_name

if TYPE_CHECKING:
    from django.db.models import Model

    from .models import QueuePause

__all__ = ['is_paused', 'pause', 'pause_of', 'resume']

_readable: dict[str, bool] = {}  # database alias -> whether claims read pauses there


def queue_key(model: type[Model], field: str) -> tuple[type[Model], str]:
    """The concrete model and the field's name that name `model`'s `field`
    queue in a pause (a proxy model's queue is its concrete model's)."""
    check_status_field(model, field)
    concrete = model._meta.concrete_model
    assert concrete is not None  # None only while the class is being built
    return concrete, concrete_field(model, field).name


def pauses_of(model: type[Model], field: str, using: str) -> Any:
    """The QueuePause rows that name `model`'s `field` queue, any queue name."""
    from .models import QueuePause  # noqa: PLC0415 (models.py files import modelqueue before the app registry is ready)

    concrete, name = queue_key(model, field)
    opts = concrete._meta
    return QueuePause.objects.using(using).filter(
        content_type__app_label=opts.app_label, content_type__model=opts.model_name, field=name
    )


def claims_read_pauses(using: str) -> bool:
    """Whether claims on database `using` read pauses: the modelqueue app is
    installed and its pause table exists there (asked once per process)."""
    readable = _readable.get(using)
    if readable is None:
        if apps.is_installed('modelqueue'):
            from .models import QueuePause  # noqa: PLC0415 (models.py files import modelqueue before the app registry is ready)

            missing = missing_tables(using, [QueuePause._meta.db_table])
            readable = missing == []
            if missing is None:  # the database did not answer: ask again next time
                return True
        else:
            readable = False
        _readable[using] = readable
    return readable


def not_paused(model: type[Model], attname: str, using: str) -> Any:
    """The condition a claim adds to its due rows: no pause names their
    queue. An empty Q where claims on `using` read no pauses."""
    if not claims_read_pauses(using):
        return Q()
    field = next(f.name for f in model._meta.concrete_fields if f.attname == attname)
    pauses = pauses_of(model, field, using)
    named = getattr(model, 'modelqueue_pause_name', None)
    if named is None:
        pauses = pauses.filter(queue_name='')
    else:
        pauses = pauses.filter(Q(queue_name='') | Q(queue_name=named()))
    return ~Exists(pauses.values('pk'))


def database(model: type[Model], using: str | None = None) -> str:
    """The database of `model`'s pauses: `using`, or else where its claims
    go (a claim is a write: the router's ``db_for_write``)."""
    return using if using is not None else router.db_for_write(model)


def pause(
    model: type[Model], field: str, *, by: str = '', using: str | None = None, queue_name: str = ''
) -> bool:
    """Pause `model`'s `field` queue: from now on no process claims from it.

    Rows already claimed finish; other queues go on. `by` names who paused
    it (the admin gives the user's name). Return True, or False when the
    queue was already paused (its first pause is kept). `using` is the
    queue's database (by default the router's ``db_for_write``, where claims
    go). `queue_name` is for :mod:`modelqueue.tasks.pauses`.

    In a worker's code, or a shell: ``modelqueue.pause(Task, 'status',
    by='alice')``; then ``modelqueue.is_paused(Task, 'status')`` is True
    until ``modelqueue.resume(Task, 'status')``. A field that is not a status
    field is refused before anything is written:

    >>> from django.contrib.auth.models import User
    >>> pause(User, 'username')
    Traceback (most recent call last):
      ...
    ValueError: invalid field 'username': expected a StatusField (BigIntegerField) of auth.User, found CharField
    """
    from django.contrib.contenttypes.models import ContentType  # noqa: PLC0415 (models.py files import modelqueue before the app registry is ready)

    from .models import QueuePause  # noqa: PLC0415 (models.py files import modelqueue before the app registry is ready)

    concrete, name = queue_key(model, field)
    using = database(model, using)
    if not isinstance(by, str):
        raise ValueError(f'invalid by {by!r}: expected a str naming who paused the queue')
    content_type = ContentType.objects.db_manager(using).get_for_model(concrete)
    try:
        with transaction.atomic(using=using):
            QueuePause.objects.using(using).create(
                content_type=content_type,
                field=name,
                queue_name=queue_name,
                paused_at=now(),
                paused_by=by[: QueuePause._meta.get_field('paused_by').max_length or None],
            )
    except IntegrityError:
        if pause_of(model, field, using=using, queue_name=queue_name) is None:
            raise
        return False
    return True


def resume(
    model: type[Model], field: str, *, using: str | None = None, queue_name: str = ''
) -> bool:
    """Resume `model`'s `field` queue paused by :func:`pause`; return
    whether it was paused. On PostgreSQL, idle workers of the queue are
    woken at once (its wake-up channel is notified)."""
    using = database(model, using)
    deleted, _ = pauses_of(model, field, using).filter(queue_name=queue_name).delete()
    if deleted and connections[using].vendor == 'postgresql':
        with connections[using].cursor() as cursor:
            cursor.execute('SELECT pg_notify(%s, %s)', [channel_name(model, field), ''])
    return bool(deleted)


def pause_of(
    model: type[Model], field: str, *, using: str | None = None, queue_name: str = ''
) -> QueuePause | None:
    """The pause of `model`'s `field` queue (when and by whom), or None."""
    using = database(model, using)
    return pauses_of(model, field, using).filter(queue_name=queue_name).first()


def is_paused(
    model: type[Model], field: str, *, using: str | None = None, queue_name: str = ''
) -> bool:
    """Whether `model`'s `field` queue is paused (see :func:`pause`)."""
    using = database(model, using)
    return pauses_of(model, field, using).filter(queue_name=queue_name).exists()
