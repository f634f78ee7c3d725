"""What the tests share: helpers, the fixtures' code, and scripts run as child processes.

tests/README.md says which module holds what. The fixtures are registered
in tests/conftest.py, so any test can ask for them by name.
"""

from pathlib import Path

# The checkout: the root of the repository these tests belong to.
ROOT = Path(__file__).resolve().parents[2]
