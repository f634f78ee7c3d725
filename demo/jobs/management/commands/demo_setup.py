"""Set up the demo's database: create it, migrate, add the superuser, seed.

Every step is a no-op when already done, so ``demo/run`` calls this on each
start. SQLite creates its file itself; a PostgreSQL or MariaDB database
named by DATABASE_URL is created on its server when missing.
"""

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError, connection

USERNAME = 'admin'
PASSWORD = 'admin'


class Command(BaseCommand):
    help = (
        'Create the database if missing, migrate, create the superuser'
        f' {USERNAME} (password {PASSWORD}) if missing, and seed.'
    )
    # The checks may query the database, which may not exist yet; migrate
    # runs them once it does.
    requires_system_checks = []

    def handle(self, *args, **options):
        self.create_database()
        call_command('migrate', interactive=False, verbosity=0)
        self.create_superuser()
        call_command('seed', stdout=self.stdout)

    def create_database(self):
        if connection.vendor == 'sqlite':
            return
        try:
            connection.ensure_connection()
            return
        except OperationalError:
            pass  # most likely missing; the server says so below if not
        name = connection.settings_dict['NAME']
        try:
            with connection._nodb_cursor() as cursor:
                cursor.execute(f'CREATE DATABASE {connection.ops.quote_name(name)}')
        except Exception as error:
            raise CommandError(f'cannot create the database {name!r}: {error}') from error
        self.stdout.write(f'Created the database {name}.')

    def create_superuser(self):
        User = get_user_model()
        user = User.objects.filter(username=USERNAME).first()
        if user is None:
            User.objects.create_superuser(USERNAME, 'admin@example.com', PASSWORD)
            self.stdout.write(f'Created the superuser {USERNAME}.')
        elif not user.check_password(PASSWORD):
            self.stdout.write(
                f'Log in as {USERNAME} with the password you gave it'
                f' (no longer {PASSWORD}).'
            )
            return
        self.stdout.write(f'Log in as: {USERNAME} / password: {PASSWORD}')
