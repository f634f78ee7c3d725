"""The benchmark harness: ``python -m bench <subcommand> [options]``.

    python -m bench throughput              # this checkout beside 2.2.1 and django-tasks-db
    python -m bench throughput --quick      # a smoke run; CI runs it after the tests
    python -m bench batches                 # --batch 100 beside one task at a time (PostgreSQL)
    python -m bench dashboard sqlite        # the admin dashboard at 1,000,000 rows
    python -m bench failures sqlite         # failure records: recording on beside off
    python -m bench pause sqlite            # the claim's pause check on beside off
    python -m bench scale postgresql        # the admin at 10,000,000 rows
    python -m bench tasks                   # Django's Tasks framework: ours beside django-tasks-db
    python -m bench counters                # the write cost of the state counters (PostgreSQL)
    python -m bench topology                # direct beside through PgBouncer, 8 hosts (PostgreSQL)
    python -m bench metrics                 # a Prometheus scrape at 10,000,000 rows (PostgreSQL)
    python -m bench unique                  # 8 processes enqueueing one key 1,000 times each
    python -m bench schedules               # 1,000 schedules every minute, 8 workers, 10 minutes
    python -m bench rescue postgresql       # a SIGKILLed worker's rows run again within 20 s
    python -m bench <subcommand> --help

Run it from the checkout's root with a Python that imports this checkout
(.venv/py3.11/bin/python after ./runtests). Published results are written
to bench/results/ and committed there; smoke runs go to
bench/results/scratch/, which git ignores (bench/results.py).
"""

import argparse
import sys

from . import (
    batches,
    counters,
    dashboard,
    failures,
    metrics,
    pause,
    rescue,
    scale,
    schedules,
    tasks,
    throughput,
    topology,
    unique,
)

SUBCOMMANDS = {
    'throughput': throughput,
    'batches': batches,
    'dashboard': dashboard,
    'failures': failures,
    'pause': pause,
    'scale': scale,
    'tasks': tasks,
    'counters': counters,
    'topology': topology,
    'metrics': metrics,
    'unique': unique,
    'schedules': schedules,
    'rescue': rescue,
}


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m bench',
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subcommands = parser.add_subparsers(dest='subcommand', required=True, metavar='subcommand')
    for name, module in SUBCOMMANDS.items():
        module.add_arguments(
            subcommands.add_parser(
                name,
                help=module.__doc__.split('\n\n')[0].replace('\n', ' '),
                description=module.__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )
    args = parser.parse_args(argv)
    return SUBCOMMANDS[args.subcommand].main(args)


if __name__ == '__main__':
    sys.exit(main())
