from django.db import models

import modelqueue


class Task(models.Model):
    """The reference's example model, with a column actions and operators edit."""

    data = models.TextField()
    note = models.CharField(max_length=200, blank=True, default='')
    status = modelqueue.StatusField(db_index=True, default=modelqueue.Status.waiting)

    def __str__(self):
        return self.data


class Execution(models.Model):
    """One row per run of an action, written by tests to count executions."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE)
    pid = models.IntegerField()


class Upload(models.Model):
    """A model with two queues: scan then publish."""

    name = models.CharField(max_length=200)
    scan_status = modelqueue.StatusField(
        db_index=True, default=modelqueue.Status.waiting
    )
    publish_status = modelqueue.StatusField(
        db_index=True, default=modelqueue.Status.created
    )

    def __str__(self):
        return self.name
