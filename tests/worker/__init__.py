"""Tests of the worker command and of waking idle workers."""
