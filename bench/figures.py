"""The one place bench/ names the library's dashboard figures module.

When `modelqueue.dashboard` becomes `modelqueue.admin.figures`, change the
import line below; the driver and the dashboard benchmark get the module
from here.
"""


def library_figures():
    """The module with `queue_figures` and `throughput`; needs Django set up."""
    import modelqueue.dashboard as figures  # noqa: PLC0415 - after django.setup()

    return figures
