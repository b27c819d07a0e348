"""``python -m questlog_api [gunicorn options]``: the API under gunicorn, with its config."""

from __future__ import annotations

import sys

CONFIG = "python:questlog_api.gunicorn_config"


def main() -> None:
    from gunicorn.app.wsgiapp import run

    sys.argv = ["questlog-api", "-c", CONFIG, *sys.argv[1:], "questlog_api:create_app()"]
    run()


if __name__ == "__main__":
    main()
