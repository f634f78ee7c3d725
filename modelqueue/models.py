"""The models of the ``modelqueue`` app."""

from .tasks.models import Task

__all__ = ['Task']
