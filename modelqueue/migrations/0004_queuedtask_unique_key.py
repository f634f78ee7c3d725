# Issue 25: unique tasks. One READY or RUNNING task per (backend_name,
# unique_key): a partial unique index where the database has them
# (PostgreSQL, SQLite), and on MariaDB and MySQL, which have none, a stored
# generated column that holds the key only while the task is active, under
# a unique index (NULLs never collide). The status bounds are those of the
# states created, waiting and working (modelqueue.tasks.unique.ACTIVE,
# which tests/tasks/test_unique.py checks against these literals).

from django.db import migrations, models

LOW, HIGH = 1000000000000000000, 3999999999999999999
TABLE, INDEX = 'modelqueue_task', 'modelqueue_task_unique_active'


def create_index(apps, schema_editor):
    qn = schema_editor.quote_name
    active = f'{qn("status")} BETWEEN {LOW} AND {HIGH}'
    if schema_editor.connection.vendor == 'mysql':
        schema_editor.execute(
            f'ALTER TABLE {qn(TABLE)} ADD COLUMN {qn("unique_active")} varchar(255) AS'
            f' (CASE WHEN {active} THEN {qn("unique_key")} END) STORED'
        )
        schema_editor.execute(
            f'CREATE UNIQUE INDEX {qn(INDEX)} ON {qn(TABLE)} ({qn("backend_name")}, {qn("unique_active")})'
        )
    else:
        schema_editor.execute(
            f'CREATE UNIQUE INDEX {qn(INDEX)} ON {qn(TABLE)} ({qn("backend_name")}, {qn("unique_key")})'
            f' WHERE {qn("unique_key")} IS NOT NULL AND {active}'
        )


def drop_index(apps, schema_editor):
    qn = schema_editor.quote_name
    if schema_editor.connection.vendor == 'mysql':
        schema_editor.execute(f'DROP INDEX {qn(INDEX)} ON {qn(TABLE)}')
        schema_editor.execute(f'ALTER TABLE {qn(TABLE)} DROP COLUMN {qn("unique_active")}')
    else:
        schema_editor.execute(f'DROP INDEX {qn(INDEX)}')


class Migration(migrations.Migration):

    dependencies = [
        ('modelqueue', '0003_pause_and_worker_commands'),
    ]

    operations = [
        migrations.AddField(
            model_name='queuedtask',
            name='unique_key',
            field=models.CharField(blank=True, max_length=255, null=True, verbose_name='unique key'),
        ),
        # Not atomic: MariaDB runs no DDL in a transaction (the migration is one on PostgreSQL).
        migrations.RunPython(create_index, drop_index, atomic=False, elidable=False),
    ]
