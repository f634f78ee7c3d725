"""The action of ``python -m bench topology``'s workers: note when it started.

Each worker process appends "pk start-time" lines to a file of its own in
the folder MQBENCH_STARTS names, then sleeps MQBENCH_DELAY_MS.
"""

import os
import threading
import time

_files = {}
_lock = threading.Lock()


def perform(task):
    wall = time.time()
    with _lock:
        fd = _files.get(os.getpid())
        if fd is None:
            path = os.path.join(os.environ['MQBENCH_STARTS'], f'starts-{os.getpid()}')
            fd = _files[os.getpid()] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.write(fd, f'{task.pk} {wall}\n'.encode())
    delay = float(os.environ.get('MQBENCH_DELAY_MS', '0'))
    if delay:
        time.sleep(delay / 1000)
