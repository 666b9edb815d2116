"""gunicorn settings for the service, read from the environment set by `python -m app serve`.

Loaded by path, not as app.gunicorn_conf, so the master process never imports the app.
"""

import os
import shutil
import tempfile

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("WORKERS", "2"))
worker_class = "sync"
timeout = 30
graceful_timeout = 20  # SIGTERM: finish in-flight requests; keep under the pod's grace period
keepalive = 2
accesslog = None  # the app logs one JSON line per request itself
control_socket_disable = True  # no ~/.gunicorn socket: the container's root filesystem is read-only
worker_tmp_dir = tempfile.gettempdir()  # a tmpfs in the read-only container


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    shutil.rmtree(os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""), ignore_errors=True)
