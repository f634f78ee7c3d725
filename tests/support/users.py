"""Users for the admin's tests: staff with given permissions, superusers."""

from django.contrib.auth.models import Permission, User

# The password of users that sign in through a form (the browser tests);
# the others have none, which is quicker: hashing one takes a while.
PASSWORD = 'secret-password'


def create_user(username, *codenames, staff=True, active=True):
    """A staff user (unless told otherwise) with the permissions `codenames` ('view_task', ...)."""
    user = User.objects.create(username=username, is_staff=staff, is_active=active)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def create_superuser(username='admin', password=None):
    """A superuser; with no `password` they can only be logged in with force_login()."""
    return User.objects.create_superuser(username, f'{username}@example.com', password)
