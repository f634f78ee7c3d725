"""A strict Content-Security-Policy for browser tests, and the reports of what it blocked.

The middleware is not in the test settings: a test that wants the policy adds
it to MIDDLEWARE (see the strict_csp fixture of tests/test_browser_csp.py). The policy names a report
view, so every violation the browser sees, even one during page load, reaches
``reports`` over HTTP.
"""

import json

from django.http import HttpResponse, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt

REPORT_PATH = '/csp-report/'

# No 'unsafe-inline' and no 'unsafe-eval' anywhere; 'report-sample' only asks
# the browser to quote the start of blocked code in its report.
POLICY = '; '.join([
    "default-src 'self'",
    "script-src 'self' 'report-sample'",
    "style-src 'self' 'report-sample'",
    "img-src 'self'",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    f'report-uri {REPORT_PATH}',
])

# Violation reports received, oldest first: the "csp-report" object of each.
reports = []


class StrictContentSecurityPolicy:
    """Middleware that sends POLICY with every response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response['Content-Security-Policy'] = POLICY
        return response


@csrf_exempt
def report_view(request):
    """Record one violation report that the browser POSTs to REPORT_PATH."""
    if request.method != 'POST':
        return HttpResponseNotAllowed(['POST'])
    try:
        report = json.loads(request.body)['csp-report']
    except (ValueError, KeyError, TypeError):
        return HttpResponse(
            'expected a JSON object with a "csp-report" member', status=400
        )
    reports.append(report)
    return HttpResponse(status=204)
