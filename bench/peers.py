"""The implementations measured beside this checkout, each kept apart.

modelqueue 2.2.1 and django-tasks-db are installed from PyPI with pip into
their own virtual environments under bench/.peers/ (made once, refilled when
the package list changes), so 2.2.1's `modelqueue` never shares a process
with this checkout's. The dashboard benchmark needs only 2.2.1's module,
which it imports under another name from a copy beside those environments.
Not run by itself: `python -m bench throughput` and `python -m bench
dashboard` use it.
"""

import hashlib
import importlib.util
import os
import subprocess
import sys

from .results import BENCH, ROOT, log

PEERS = BENCH / '.peers'
MODELQUEUE_221 = 'modelqueue==2.2.1'
DJANGO_TASKS_DB = 'django-tasks-db==0.13.0'
PACKAGES = {
    'modelqueue': ['-e', str(ROOT)],
    'modelqueue-2.2.1': [MODELQUEUE_221],
    'django-tasks-db': [DJANGO_TASKS_DB],
    # This checkout as a backend of Django's Tasks framework (python -m bench tasks).
    'modelqueue-tasks': ['-e', str(ROOT) + '[tasks]'],
}
#: The implementations that are this checkout, run from its source.
OURS = ('modelqueue', 'modelqueue-tasks')
#: The implementations of `python -m bench throughput`, and of `python -m bench tasks`.
IMPLS = ['modelqueue', 'modelqueue-2.2.1', 'django-tasks-db']
TASKS_IMPLS = ['modelqueue-tasks', 'django-tasks-db']


def python_can(python, code):
    return subprocess.run([python, '-c', code], capture_output=True, cwd=BENCH).returncode == 0


def driver_packages(databases):
    packages = []
    if 'postgresql' in databases:
        packages.append('psycopg[binary]>=3.1')
    if 'mariadb' in databases:
        packages.append('mysqlclient>=2.2.1')
    return packages


def our_python(databases):
    """This Python when it imports this checkout (and the drivers)."""
    code = (
        'import django, modelqueue, pathlib, sys;'
        f'sys.exit(pathlib.Path(modelqueue.__file__).parent != pathlib.Path({str(ROOT / "modelqueue")!r}))'
    )
    if 'postgresql' in databases:
        code += '; import psycopg'
    if 'mariadb' in databases:
        code += '; import MySQLdb'
    if python_can(sys.executable, code):
        return sys.executable
    return None


def ensure_venvs(impls, databases, django_version):
    """The Python of each implementation's virtual environment, made and
    filled once (the installs run side by side)."""
    pythons, installs = {}, []
    for impl in impls:
        venv = PEERS / impl
        python = venv / 'bin' / 'python'
        pythons[impl] = str(python)
        packages = list(PACKAGES[impl])
        if impl == 'django-tasks-db' and int(django_version.split('.')[0]) < 6:
            packages = [DJANGO_TASKS_DB.replace('==', '[compat]==')]  # the django-tasks backport
        packages += [f'Django=={django_version}', *driver_packages(databases)]
        stamp = venv / ('.installed-' + hashlib.sha1(' '.join(packages).encode()).hexdigest()[:12])
        if stamp.exists():
            continue
        log(f'bench: installing {" ".join(packages)} into {venv}')
        if not python.exists():
            subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
        pip = subprocess.Popen(
            [str(python), '-m', 'pip', 'install', '-q', *packages],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        installs.append((pip, packages, stamp))
    for pip, packages, stamp in installs:
        output = pip.communicate()[0]
        if pip.returncode != 0:
            raise RuntimeError(f'bench: pip could not install {packages}:\n{output}')
        stamp.touch()
    return pythons


def import_path():
    """A folder holding only the `bench` package, so a peer's `modelqueue`
    is never shadowed by this checkout's."""
    path = PEERS / 'path'
    path.mkdir(parents=True, exist_ok=True)
    link = path / 'bench'
    if not link.exists():
        link.symlink_to(BENCH, target_is_directory=True)
    return path


def import_221():
    """modelqueue 2.2.1's module under the name `modelqueue_221`, in this
    process: from MODELQUEUE_221 (a path to its __init__.py) if set, else
    from a copy pip fetches once into bench/.peers/modelqueue-2.2.1-module
    (beside, not inside, the virtual environment of the throughput run)."""
    path = os.environ.get('MODELQUEUE_221')
    if path is None:
        copy = PEERS / 'modelqueue-2.2.1-module'
        path = copy / 'modelqueue' / '__init__.py'
        if not path.exists():
            log(f'bench: installing {MODELQUEUE_221} into {copy}')
            subprocess.run(
                [sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
                 '--target', str(copy), MODELQUEUE_221],
                check=True,
            )
    spec = importlib.util.spec_from_file_location('modelqueue_221', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
