from django.contrib import admin
from django.urls import path
from django.utils.translation import gettext_lazy as _
from django.views.generic import RedirectView

admin.site.site_header = _('ModelQueue demo')
admin.site.site_title = _('ModelQueue demo')
# Room for the queue columns.
admin.site.enable_nav_sidebar = False

urlpatterns = [
    path('', RedirectView.as_view(url='/admin/')),
    path('admin/', admin.site.urls),
]
