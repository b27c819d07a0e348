"""gunicorn config of the event API: `gunicorn -c services/api/gunicorn.conf.py
'questlog_api:create_app()'`. Everything lives in questlog_api.gunicorn_config so the
installed package (the image) carries it too."""

from questlog_api.gunicorn_config import *  # noqa: F403
from questlog_api.gunicorn_config import child_exit, on_starting, post_fork, worker_exit

__all__ = ["child_exit", "on_starting", "post_fork", "worker_exit"]
