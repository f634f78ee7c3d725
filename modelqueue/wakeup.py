"""How an idle worker waits for work.

``waiter_for(queryset, field)`` returns an object whose ``wait(seconds)``
returns when work may be due or after `seconds`, whichever comes first.
Polling (sleeping) is the mechanism everywhere for now.
"""

import time


class PollingWaiter:
    """Wait by sleeping: the fallback on every database."""

    def wait(self, seconds):
        time.sleep(seconds)

    def close(self):
        pass


def waiter_for(queryset, field):
    """Return the waiter an idle worker of `queryset`'s `field` queue uses."""
    return PollingWaiter()
