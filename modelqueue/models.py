"""The models of the ``modelqueue`` app."""

from .tasks.models import QueuedTask

__all__ = ['QueuedTask']
