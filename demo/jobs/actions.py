"""The demo's worker actions: pretend work that sometimes goes wrong.

Each outcome of ``modelqueue.run()`` shows up in the admin:

- most rows finish;
- ``Retry`` puts a row back, waiting a little, without counting an attempt
  (a busy mail server, a busy CDN);
- ``Abort`` counts an attempt and waits; past the worker's ``--retry``
  attempts the row is canceled (a mailbox at flaky.example always aborts);
- ``Cancel`` gives up at once (an address at invalid.example, an image too
  large to resize);
- any other exception counts an attempt like ``Abort`` and reaches the
  worker's log (a connection reset, now and then).

Every failed attempt leaves a failure record with its reason: the
exception's message, or, for ``Abort``, the error it was raised *from*. The
emails' changelist shows each row's last error; its change form, the history.

The work itself is a short sleep, long enough to see rows *working*.
"""

import datetime as dt
import random
import time

from django.utils import timezone

import modelqueue

MAX_PIXELS = 40_000_000
THUMBNAIL_WIDTH = 320


def send_email(email):
    """Send `email` (pretend): finished, retried, aborted or canceled."""
    time.sleep(random.uniform(0.1, 0.6))
    domain = email.recipient.rpartition('@')[2]
    if domain == 'invalid.example':
        raise modelqueue.Cancel(f'550 no mailbox {email.recipient}')
    if domain == 'flaky.example':
        raise modelqueue.Abort(dt.timedelta(seconds=5)) from TimeoutError(
            f'mx.{domain} did not answer within 30 seconds'
        )
    luck = random.random()
    if luck < 0.08:
        raise modelqueue.Retry(dt.timedelta(seconds=random.randint(5, 30)))
    if luck < 0.12:
        raise modelqueue.Abort(dt.timedelta(seconds=10)) from ConnectionRefusedError(
            f'421 mail server busy, try {email.recipient} later'
        )
    if luck < 0.13:
        raise ConnectionResetError('mail server closed the connection')
    email.sent_at = timezone.now()


def resize_image(image):
    """Resize `image` (pretend), then queue it for publishing."""
    pixels = image.width * image.height
    if pixels > MAX_PIXELS:
        raise modelqueue.Cancel(f'{image.width}x{image.height} is too large')
    time.sleep(0.2 + pixels / 20_000_000)
    if random.random() < 0.1:
        raise modelqueue.Abort(dt.timedelta(seconds=15)) from OSError(
            f'image store unavailable while reading {image.name}'
        )
    height = round(image.height * THUMBNAIL_WIDTH / image.width)
    image.thumbnail = f'{THUMBNAIL_WIDTH}x{height}'
    # Written with the outcome: the second queue of this row starts now.
    image.publish_status = modelqueue.Status.waiting()


def publish_image(image):
    """Publish `image` (pretend); the CDN is busy now and then."""
    time.sleep(random.uniform(0.05, 0.2))
    if random.random() < 0.1:
        raise modelqueue.Retry(dt.timedelta(seconds=10))
    image.published_at = timezone.now()
