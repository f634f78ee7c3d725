"""Exact state counts kept by PostgreSQL triggers for the demo's queues
(see modelqueue.counters); on SQLite and MariaDB this does nothing."""

from django.db import migrations

from modelqueue.counters import install_counters, uninstall_counters

QUEUES = [('Email', 'status'), ('Image', 'resize_status'), ('Image', 'publish_status')]


def install(apps, schema_editor):
    for model, field in QUEUES:
        install_counters(apps.get_model('jobs', model), field, using=schema_editor.connection.alias)


def uninstall(apps, schema_editor):
    for model, field in QUEUES:
        uninstall_counters(apps.get_model('jobs', model), field, using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [('jobs', '0001_initial')]
    operations = [migrations.RunPython(install, uninstall)]
