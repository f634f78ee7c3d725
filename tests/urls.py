from django.conf import settings
from django.contrib import admin
from django.urls import path

from tests.support import csp

urlpatterns = [
    path('admin/', admin.site.urls),
    path(csp.REPORT_PATH.lstrip('/'), csp.report_view),  # only the CSP test's policy names it
]

if 'import_export' in settings.INSTALLED_APPS:  # the optional import/export admin
    from tests.testapp.import_export_admin import site as import_export_site

    urlpatterns.append(path('ie-admin/', import_export_site.urls))
