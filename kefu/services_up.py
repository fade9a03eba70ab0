"""``python -m kefu.services_up REDIS_URL DATABASE_URL``: exit 0 when both answer.

``make test-service`` uses it to decide whether the service-mode suite can run;
it prints what is missing otherwise.
"""

import socket
import sys
from urllib.parse import urlsplit


def answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def main(redis_url: str, database_url: str) -> int:
    missing = [name for name, url, port in (("Redis", redis_url, 6379), ("PostgreSQL", database_url, 5432))
               if not answers(url, port)]
    for name in missing:
        print(f"{name} does not answer", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
