"""Django settings for one implementation under benchmark.

MQBENCH_IMPL picks the implementation (modelqueue, modelqueue-2.2.1,
django-tasks-db, or modelqueue-tasks: this checkout's ModelQueueBackend of
Django's Tasks framework), MQBENCH_DB the database (sqlite, postgresql, mariadb) and
MQBENCH_DB_NAME the database name (a file path for SQLite). Every
implementation gets the same database settings: the ones our guide
(docs/guide.rst) recommends for several workers on SQLite, defaults elsewhere.
"""

import os

IMPL = os.environ.get('MQBENCH_IMPL', 'modelqueue')
VENDOR = os.environ.get('MQBENCH_DB', 'sqlite')
NAME = os.environ.get('MQBENCH_DB_NAME', 'mqbench')

DEBUG = False
SECRET_KEY = 'modelqueue-bench-only'
USE_TZ = True
TIME_ZONE = 'UTC'
DEFAULT_AUTO_FIELD = 'django.db.models.BigAutoField'
INSTALLED_APPS = []
if IMPL == 'django-tasks-db':
    INSTALLED_APPS.append('django_tasks_db')
    TASKS = {
        'default': {'BACKEND': 'django_tasks_db.DatabaseBackend', 'QUEUES': ['default']}
    }
elif IMPL == 'modelqueue-tasks':
    # Its task table and worker command; failure records and heartbeats name content types.
    INSTALLED_APPS += ['django.contrib.contenttypes', 'modelqueue']
    TASKS = {
        'default': {'BACKEND': 'modelqueue.tasks.ModelQueueBackend', 'QUEUES': ['default']}
    }
    # The worker finds a row's task only in a module the application
    # imports (modelqueue.tasks.paths): bench.benchapp is not an installed app.
    MODELQUEUE_TASK_MODULES = ['bench.benchapp.tasks']
    # bench/schedules.py: MQBENCH_SCHEDULES schedules of a no-op task, every minute.
    if os.environ.get('MQBENCH_SCHEDULES'):
        MODELQUEUE_SCHEDULES = {
            f's{number:05}': {'task': 'bench.benchapp.tasks.scheduled', 'cron': '* * * * *', 'args': [number]}
            for number in range(int(os.environ['MQBENCH_SCHEDULES']))
        }
else:
    INSTALLED_APPS.append('bench.queueapp')  # the Task model of both modelqueues
if IMPL == 'modelqueue':
    # Its worker command; its failure records and heartbeats name content types.
    INSTALLED_APPS += ['django.contrib.contenttypes', 'modelqueue']

if VENDOR == 'sqlite':
    DATABASES = {
        'default': {
            'ENGINE': 'django.db.backends.sqlite3',
            'NAME': NAME,
            'OPTIONS': {
                'init_command': 'PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;',
                'transaction_mode': 'IMMEDIATE',
                'timeout': 20,
            },
        }
    }
elif VENDOR == 'postgresql':
    DATABASES = {
        'default': {
            'ENGINE': 'django.db.backends.postgresql',
            'NAME': NAME,
            'USER': os.environ.get('MODELQUEUE_PG_USER', 'postgres'),
            'HOST': os.environ.get('MODELQUEUE_PG_HOST', '127.0.0.1'),
            'PORT': os.environ.get('MODELQUEUE_PG_PORT', '5432'),
        }
    }
elif VENDOR == 'mariadb':
    DATABASES = {
        'default': {
            'ENGINE': 'django.db.backends.mysql',
            'NAME': NAME,
            'USER': os.environ.get('MODELQUEUE_MARIADB_USER', 'root'),
            'PASSWORD': os.environ.get('MODELQUEUE_MARIADB_PASSWORD', ''),
            'HOST': os.environ.get('MODELQUEUE_MARIADB_HOST', '127.0.0.1'),
            'PORT': os.environ.get('MODELQUEUE_MARIADB_PORT', '3306'),
            'OPTIONS': {'charset': 'utf8mb4'},
        }
    }
else:
    raise ValueError(
        f'invalid MQBENCH_DB {VENDOR!r}: expected sqlite, postgresql or mariadb'
    )

LOGGING = {
    'version': 1,
    'disable_existing_loggers': False,
    'handlers': {'console': {'class': 'logging.StreamHandler'}},
    'loggers': {'modelqueue': {'handlers': ['console'], 'level': 'ERROR'}},
}
