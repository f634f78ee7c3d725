"""State and Status: the 19-digit encoding of a queue row.

A status is one signed 64-bit integer with three fields::

    state        priority          attempts
      |   |----------------------|   |
      2   2018 03 27  14 43 25 759   0

The state digit (1 created ... 5 canceled) comes first, so a range query on
the status column selects one state. The 17-digit priority is either a UTC
timestamp ``yyyymmddHHMMSSmmm`` or a plain integer; lower values run first.
The last digit counts attempts (0 through 9).

This module is pure: it knows nothing of Django's database layer, and
``Status.tally`` only calls the queryset it is given.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, SupportsInt, TypeVar, overload

import pytz

from .validation import check_integer

if TYPE_CHECKING:
    from django.db.models import QuerySet

_StateT = TypeVar('_StateT', bound='State')
_StatusT = TypeVar('_StatusT', bound='Status')

ONE_HOUR = dt.timedelta(hours=1)
ZERO_SECS = dt.timedelta(seconds=0)

#: The parts of a status that the admin's columns and the import-export
#: columns show decoded: its state, when it runs (its priority), its attempts.
DECODED_PARTS = ('state', 'when', 'attempts')

STATE_OFFSET = 10**18
MAX_PRIORITY = 10**17 - 1
MAX_ATTEMPTS = 9


def now() -> dt.datetime:
    """Return now datetime in UTC timezone.

    >>> now().tzinfo
    <UTC>
    """
    return dt.datetime.now(pytz.utc)


def datetime_to_priority(value: dt.datetime) -> int:
    """Return the 17-digit priority ``yyyymmddHHMMSSmmm`` of datetime `value`.

    Aware datetimes are converted to UTC; naive datetimes are taken as UTC.
    Microseconds are truncated to milliseconds.

    >>> datetime_to_priority(dt.datetime(2018, 1, 2, 3, 4, 56, 789123))
    20180102030456789
    >>> eastern = pytz.timezone('US/Eastern')
    >>> datetime_to_priority(eastern.localize(dt.datetime(2018, 1, 1, 22)))
    20180102030000000
    """
    if value.tzinfo is not None and value.utcoffset() is not None:
        try:
            value = value.astimezone(pytz.utc)
        except OverflowError:
            raise ValueError(
                f'invalid priority {value!r}: its UTC time is outside years 1'
                ' through 9999'
            ) from None
    return (
        value.year * 10**13
        + value.month * 10**11
        + value.day * 10**9
        + value.hour * 10**7
        + value.minute * 10**5
        + value.second * 10**3
        + value.microsecond // 1000
    )


def priority_to_datetime(priority: int) -> dt.datetime | None:
    """Return the aware UTC datetime encoded by `priority`, or None.

    None means `priority` is a plain integer, not a valid timestamp.

    >>> priority_to_datetime(20180102030456789)
    datetime.datetime(2018, 1, 2, 3, 4, 56, 789000, tzinfo=<UTC>)
    >>> priority_to_datetime(123) is None
    True
    """
    year, month, day, hour, minute, second, millisecond = _priority_parts(priority)
    try:
        return dt.datetime(
            year, month, day, hour, minute, second, millisecond * 1000, pytz.utc
        )
    except ValueError:
        return None


def _priority_parts(priority: int) -> tuple[int, int, int, int, int, int, int]:
    """(year, month, day, hour, minute, second, millisecond) of `priority`'s digits."""
    rest, millisecond = divmod(priority, 1000)
    rest, second = divmod(rest, 100)
    rest, minute = divmod(rest, 100)
    rest, hour = divmod(rest, 100)
    rest, day = divmod(rest, 100)
    year, month = divmod(rest, 100)
    return year, month, day, hour, minute, second, millisecond


def next_timestamp(priority: int) -> int | None:
    """Return the first timestamp priority at or after `priority`, or None.

    A 17-digit integer can look like a timestamp and not be one (month 13,
    February 30, hour 25): the next timestamp is where its first impossible
    part rolls over. None means past the year 9999.

    >>> next_timestamp(20260230123456789)  # February 30
    20260301000000000
    >>> next_timestamp(20180102030456789)
    20180102030456789
    """
    if priority_to_datetime(priority) is not None:
        return priority
    year, month, day, hour, minute, _second, _millisecond = _priority_parts(priority)
    try:
        if year < 1:
            return datetime_to_priority(dt.datetime(1, 1, 1))
        if not 1 <= month <= 12:
            return datetime_to_priority(dt.datetime(year + (month > 12), 1, 1))
        first = dt.datetime(year, month, 1)
        following = (first + dt.timedelta(days=31)).replace(day=1)
        if not 1 <= day <= (following - first).days:
            return datetime_to_priority(first if day < 1 else following)
        start = first.replace(day=day)
        if hour > 23:
            return datetime_to_priority(start + dt.timedelta(days=1))
        if minute > 59:
            return datetime_to_priority(start.replace(hour=hour) + dt.timedelta(hours=1))
        # Seconds past 59 (milliseconds run 0 through 999 and are never wrong).
        return datetime_to_priority(start.replace(hour=hour, minute=minute) + dt.timedelta(minutes=1))
    except (ValueError, OverflowError):  # past the year 9999
        return None


class State(int):
    """Model Queue State

    >>> state = State(1, 'created')
    >>> assert state == 1
    >>> assert state.name == 'created'
    >>> print(state)
    created
    >>> repr(state)
    "State(1, 'created')"
    >>> State.created
    State(1, 'created')

    """

    name: str

    # The five states, set below the Status class.
    created: ClassVar[State]
    waiting: ClassVar[State]
    working: ClassVar[State]
    finished: ClassVar[State]
    canceled: ClassVar[State]

    def __new__(cls: type[_StateT], value: int, name: str) -> _StateT:
        state = super().__new__(cls, value)
        state.name = name
        return state

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f'{type(self).__name__}({int(self)!r}, {self.name!r})'

    def __reduce__(self) -> tuple[type[State], tuple[int, str]]:
        return (type(self), (int(self), self.name))

    @classmethod
    def get(cls, state: State | str | int) -> State:
        """Return the State for `state`: a State, its name, or its number.

        >>> State.get('waiting')
        State(2, 'waiting')
        >>> State.get(5)
        State(5, 'canceled')
        >>> State.get('paused')
        Traceback (most recent call last):
          ...
        ValueError: unknown state 'paused': expected one of created, waiting, working, finished, canceled
        """
        if isinstance(state, State):
            return state
        for known in Status.states:
            if state == known.name or (
                isinstance(state, int)
                and not isinstance(state, bool)
                and state == int(known)
            ):
                return known
        names = ', '.join(known.name for known in Status.states)
        raise ValueError(f'unknown state {state!r}: expected one of {names}')


def check_attempts(attempts: object) -> int:
    """Return `attempts` if it is an integer from 0 through 9, else raise ValueError."""
    return check_integer('attempts', attempts, MAX_ATTEMPTS)


def check_priority(priority: object) -> int:
    """Return `priority` (an integer, or a datetime) as its 17-digit integer, or raise ValueError."""
    if isinstance(priority, dt.datetime):
        return datetime_to_priority(priority)
    if (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not 0 <= priority <= MAX_PRIORITY
    ):
        raise ValueError(
            f'invalid priority {priority!r}: expected a datetime or an integer'
            f' from 0 through {MAX_PRIORITY} (at most 17 digits)'
        )
    return int(priority)


class StatusConstructor(Protocol):
    """The type of ``Status.created``, ``Status.waiting`` and the other
    constructors named after the states."""

    def __call__(self, priority: int | dt.datetime | None = None, attempts: int = 0) -> Status: ...


class Status(int):
    """Model Queue Status

    64-bit Signed Integer Field Format::

        state        priority          attempt
          |   |----------------------|   |
          2   2018 03 27  14 43 25 759   0
               |   |   |   |  |  |  |
               |   |   | hour |  |  |
              year |   |  minute |  |
                 month |     second |
                      day       millisecond

    >>> status = Status(3201801020304567896)
    >>> assert status.state == State.working
    >>> assert status.priority == 20180102030456789
    >>> assert status.attempts == 6
    >>> Status.canceled(123, 5)
    Status(5000000000000001235)

    A value that is not a status raises ValueError:

    >>> Status(6000000000000000000)
    Traceback (most recent call last):
      ...
    ValueError: invalid status 6000000000000000000: expected a 19-digit integer
    whose first digit (the state) is 1 through 5

    """

    states = [
        State(1, 'created'),
        State(2, 'waiting'),
        State(3, 'working'),
        State(4, 'finished'),
        State(5, 'canceled'),
    ]

    # One constructor per state, set at the end of this module.
    created: ClassVar[StatusConstructor]
    waiting: ClassVar[StatusConstructor]
    working: ClassVar[StatusConstructor]
    finished: ClassVar[StatusConstructor]
    canceled: ClassVar[StatusConstructor]

    def __new__(cls: type[_StatusT], value: SupportsInt | str) -> _StatusT:
        number = None
        if not isinstance(value, (bool, float)):
            try:
                number = int(value)
            except (TypeError, ValueError):
                pass
        if number is None or not Status.minimum(1) <= number <= Status.maximum(5):
            raise ValueError(
                f'invalid status {value!r}: expected a 19-digit integer whose'
                ' first digit (the state) is 1 through 5'
            )
        return super().__new__(cls, number)

    def __repr__(self) -> str:
        return f'{type(self).__name__}({int(self)})'

    __str__ = int.__repr__

    def __reduce__(self) -> tuple[type[Status], tuple[int]]:
        return (type(self), (int(self),))

    @property
    def state(self) -> State:
        """Return state of status.

        >>> status = Status(3201801020304567896)
        >>> status.state
        State(3, 'working')

        """
        return self.states[self // STATE_OFFSET - 1]

    @property
    def priority(self) -> int:
        """Return priority of status.

        >>> status = Status(3201801020304567896)
        >>> status.priority
        20180102030456789

        """
        return self % STATE_OFFSET // 10

    @property
    def attempts(self) -> int:
        """Return attempts of status.

        >>> status = Status(3201801020304567896)
        >>> status.attempts
        6

        """
        return self % 10

    @classmethod
    def combine(
        cls: type[_StatusT], state: State | str | int, priority: int | dt.datetime, attempts: int
    ) -> _StatusT:
        """Combine `state`, `priority`, and `attempts` fields into status.

        `priority` is an integer (0 through 17 digits) or a datetime. Aware
        datetimes are converted to UTC; naive datetimes are taken as UTC.

        >>> Status.combine(State.waiting, 0, 1)
        Status(2000000000000000001)
        >>> Status.combine('waiting', 0, 2)
        Status(2000000000000000002)
        >>> priority = dt.datetime(2018, 1, 2, 3, 4, 56, 789123)
        >>> Status.combine(State.waiting, priority, 3)
        Status(2201801020304567893)

        Fields out of range raise ValueError:

        >>> Status.combine('waiting', -1, 0)
        Traceback (most recent call last):
          ...
        ValueError: invalid priority -1: expected a datetime or an integer from 0
        through 99999999999999999 (at most 17 digits)
        >>> Status.combine('waiting', 0, 10)
        Traceback (most recent call last):
          ...
        ValueError: invalid attempts 10: expected an integer from 0 through 9

        """
        state = State.get(state)
        priority = check_priority(priority)
        attempts = check_attempts(attempts)
        return cls(state * STATE_OFFSET + priority * 10 + attempts)

    @overload
    def parse(self, datetime: Literal[False]) -> tuple[State, int, int]: ...
    @overload
    def parse(self, datetime: bool = True) -> tuple[State, int | dt.datetime, int]: ...
    def parse(self, datetime: bool = True) -> tuple[State, int | dt.datetime, int]:
        """Parse status into state, priority, and attempts fields.

        If `datetime` is True (the default), then parse priority into datetime
        object. Priority has format::

                   priority
            |----------------------|
            2018 03 27  14 43 25 759
             |   |   |   |  |  |  |
             |   |   | hour |  |  |
            year |   |  minute |  |
               month |     second |
                    day       millisecond

        A priority that is not a valid timestamp stays an integer.

        :param bool datetime: parse priority as datetime (default True)
        :returns: tuple of state, priority, and attempts

        >>> status = Status(1201801020304567895)
        >>> state, priority, attempts = status.parse()
        >>> state
        State(1, 'created')
        >>> priority
        datetime.datetime(2018, 1, 2, 3, 4, 56, 789000, tzinfo=<UTC>)
        >>> attempts
        5
        >>> status = Status(3000000000000000007)
        >>> status.parse(datetime=False)
        (State(3, 'working'), 0, 7)

        """
        priority: int | dt.datetime = self.priority
        if datetime:
            priority = priority_to_datetime(self.priority) or priority
        return self.state, priority, self.attempts

    @classmethod
    def filter(cls, field: str, state: State | str | int) -> dict[str, int]:
        """Return keyword arguments to filter `field` by `state` for querysets.

        For example::

            Task.objects.filter(**Status.filter('fieldname', State.working))

        :param str field: field name
        :param State state: model queue state
        :returns: keyword arguments

        >>> kwargs = Status.filter('status', State.waiting)
        >>> assert len(kwargs) == 2
        >>> assert kwargs['status__gte'] == Status.minimum(State.waiting)
        >>> assert kwargs['status__lte'] == Status.maximum(State.waiting)
        >>> value = Status.filter('status', 'waiting')
        >>> assert kwargs == value

        """
        return {
            field + '__gte': cls.minimum(state),
            field + '__lte': cls.maximum(state),
        }

    @classmethod
    def minimum(cls, state: State | str | int) -> int:
        """Calculate status minimum value given `state`.

        >>> Status.minimum(State.working)
        3000000000000000000
        >>> Status.minimum('working')
        3000000000000000000

        :param state: status state
        :returns: minimum status value with given state

        """
        return int(State.get(state)) * STATE_OFFSET

    @classmethod
    def maximum(cls, state: State | str | int) -> int:
        """Calculate status maximum value given `state`.

        >>> Status.maximum(State.working)
        3999999999999999999
        >>> Status.maximum('working')
        3999999999999999999

        :param state: status state
        :returns: maximum status value with given state

        """
        return (int(State.get(state)) + 1) * STATE_OFFSET - 1

    @classmethod
    def tally(cls, queryset: QuerySet[Any], field: str) -> dict[str, int]:
        """Return mapping of state to count from `field` in `queryset`.

        One range count per state, each answered from the status index
        (measured faster than one conditional aggregate, which reads every
        row). A stored value that is not a status is in no state. For
        example::

            Status.tally(Task.objects.all(), 'status')

        :param queryset: Django queryset
        :param str field: field name
        :returns: mapping of state names to counts

        """
        queryset = queryset.order_by()
        return {
            state.name: queryset.filter(**cls.filter(field, state)).count()
            for state in cls.states
        }


def _make_constructor(state: State) -> classmethod[Status, ..., Status]:
    def constructor(
        cls: type[Status], priority: int | dt.datetime | None = None, attempts: int = 0
    ) -> Status:
        priority = now() if priority is None else priority
        return cls.combine(state, priority, attempts)

    constructor.__name__ = constructor.__qualname__ = state.name
    constructor.__doc__ = f"""Return new {state.name} status with given priority and attempts.

        When `priority` is None (the default), uses `now()`.

        :param priority: integer or datetime, lower is higher priority
        :param int attempts: number of previous attempts (0 through 9)
        :returns: status

        >>> Status.{state.name}(20180102030456789, 1)
        Status({int(state)}201801020304567891)
        """
    return classmethod(constructor)


for _state in Status.states:
    setattr(State, _state.name, _state)
    setattr(Status, _state.name, _make_constructor(_state))
del _state
