"""Tests of the demo project (demo/)."""
