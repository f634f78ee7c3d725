from django.db import models

import modelqueue


class Task(models.Model):
    """The reference's example model: the queue of both modelqueue versions."""

    data = models.TextField()
    status = modelqueue.StatusField(db_index=True, default=modelqueue.Status.waiting)

    def __str__(self):
        return self.data
