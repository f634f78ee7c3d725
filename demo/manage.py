#!/usr/bin/env python
"""Django's command-line utility for the demo site (run from anywhere)."""

import os
import sys
from pathlib import Path

if __name__ == '__main__':
    # The repository root, so that `demo` and `modelqueue` import.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'demo.settings')
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
