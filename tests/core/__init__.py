"""Tests of the core: status encoding, ranges, run(), and its guarantees under faults."""
