"""Pure conversions from the formats alert sources speak to :class:`~shared.alert.Alert`.

One module per format (Alertmanager webhook v4 / Grafana, PagerDuty Events API v2, native),
no I/O: the ingest service uses them over HTTP and the router for records on the alerts topic.
"""

from shared.formats._common import Problem
from shared.formats.detect import Format, detect

__all__ = ["Format", "Problem", "detect"]
