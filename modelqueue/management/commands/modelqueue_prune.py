"""``manage.py modelqueue_prune [--successful DAYS] [--failed DAYS] [--dry-run]``:
delete the finished rows of the Tasks backend's table past their age.

The ages come from ``MODELQUEUE_TASK_RETENTION`` (7 days for SUCCESSFUL
rows, 30 for FAILED ones, by default) unless given; ``never`` keeps a
state's rows. READY and RUNNING rows are never deleted. Workers of
``--tasks`` prune the same rows about once a minute, a bounded amount at a
time; the command deletes every row past its age, in batches (see
:mod:`modelqueue.tasks.retention`), and says how many it deleted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import router

from ...tasks.models import QueuedTask
from ...tasks.retention import TaskPruner

NEVER = 'never'


def age(text: str) -> dt.timedelta | str:
    """A command-line age: a timedelta of a number of days (0 or more), or NEVER."""
    if text == NEVER:
        return NEVER
    try:
        days = float(text)
        if not math.isfinite(days) or days < 0:
            raise ValueError
        return dt.timedelta(days=days)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f'invalid age {text!r}: expected a number of days, 0 or more, or never'
        ) from None


class Command(BaseCommand):
    help = (
        "Delete the Tasks backend's finished task rows (SUCCESSFUL, FAILED) older than"
        ' MODELQUEUE_TASK_RETENTION says, or than the ages given; READY and RUNNING'
        ' rows are never deleted.'
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        for state in ('successful', 'failed'):
            parser.add_argument(
                f'--{state}',
                type=age,
                metavar='DAYS',
                help=f'delete {state.upper()} rows finished more than DAYS days ago (a'
                ' number, 0 or more; "never" keeps them); default: the setting',
            )
        parser.add_argument(
            '--dry-run', action='store_true', help='only count the rows that would be deleted'
        )
        parser.add_argument(
            '--database',
            help="the database of the task table (default: the router's for writing it)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        using = options['database'] or router.db_for_write(QueuedTask)
        pruner = TaskPruner(using)
        given = {
            state: None if options[state.lower()] == NEVER else options[state.lower()]
            for state in ('SUCCESSFUL', 'FAILED')
            if options[state.lower()] is not None
        }
        try:
            cutoffs = pruner.cutoffs(given)
        except ValueError as error:  # the setting
            raise CommandError(error) from None
        if options['dry_run']:
            counts = pruner.count(cutoffs)
        else:
            counts = pruner.prune_all(cutoffs)
        if options['verbosity'] < 1:
            return
        verb = 'Would delete' if options['dry_run'] else 'Deleted'
        for state, cutoff in cutoffs.items():
            if cutoff is None:
                self.stdout.write(f'Kept every {state} task row.')
            else:
                rows = 'row' if counts[state] == 1 else 'rows'
                self.stdout.write(
                    f'{verb} {counts[state]} {state} task {rows} finished before'
                    f' {cutoff:%Y-%m-%d %H:%M:%S} UTC.'
                )
