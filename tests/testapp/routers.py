"""The standard read-replica router, for the topology tests.

Reads of the queue's models (this app's and ModelQueue's own tables) go to
the replica, every write to the primary, as Django's documentation shows
a primary/replica router; sessions, users and content types stay on the
primary, where a login is read back at once. ``DATABASE_ROUTERS`` takes
the class by path (``tests.testapp.routers.ReplicaRouter``: 'replica' and
'default'), or an instance naming other aliases.
"""

REPLICATED_APPS = ('testapp', 'modelqueue')


class ReplicaRouter:
    def __init__(self, read='replica', write='default'):
        self.read = read
        self.write = write

    def db_for_read(self, model, **hints):
        return self.read if model._meta.app_label in REPLICATED_APPS else self.write

    def db_for_write(self, model, **hints):
        return self.write

    def allow_relation(self, first, second, **hints):
        return True

    def allow_migrate(self, db, app_label, **hints):
        return db == self.write
