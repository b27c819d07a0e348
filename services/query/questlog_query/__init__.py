"""questlog query service: fast, read-only analytics over the committed lake tables.

Usage::

    gunicorn -c services/query/gunicorn.conf.py 'questlog_query:create_app()'
"""

from questlog_query.app import create_app

__all__ = ["create_app"]
