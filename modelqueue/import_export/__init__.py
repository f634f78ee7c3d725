"""django-import-export for queue models: statuses as readable columns.

- :mod:`modelqueue.import_export.resources`: ``QueueResource`` and
  ``queue_resource()``, the resource that exports each queue field decoded
  and imports it back, never undoing a worker's result;
- :mod:`modelqueue.import_export.admin`: ``QueueImportExportMixin``, the
  import and export buttons of a queue model's changelist.

Both need django-import-export (``pip install "modelqueue[import-export]"``);
nothing else of ModelQueue does, and importing this package alone loads
nothing of it.
"""
