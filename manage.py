#!/usr/bin/env python
"""Django's command-line utility for Kefu.

Configuration errors (a malformed DATABASE_URL, an unknown KEFU_MODEL, Redis
configured but down) end the command with one line saying what is wrong,
instead of a stack trace half-way through.
"""
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kefu.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from django.core.management import execute_from_command_line

    from kefu.config import ConfigError

    try:
        execute_from_command_line(sys.argv)
    except ConfigError as exc:
        sys.stderr.write(f"kefu: configuration error: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
