"""[core] hostname_callable of the native cluster's Celery workers: two workers share one machine,
so each task instance's hostname names its worker (worker-1@host), as separate machines would."""
from __future__ import annotations

import os
import socket


def hostname() -> str:
    worker = os.environ.get("CLUSTER_WORKER")
    return f"{worker}@{socket.gethostname()}" if worker else socket.getfqdn()
