"""``manage.py serve``: check the configuration, then run uvicorn on kefu.asgi.

The same as ``uvicorn kefu.asgi:application`` (what docker-compose runs), with the
defaults of the embedded demo: 127.0.0.1:8000, one process.
"""

import uvicorn
from django.core.management.base import BaseCommand

from kefu.preflight import exit_on_failure

# Idle keep-alive connections are closed after this many seconds (uvicorn's default is 5, as is many clients'
# own idle expiry: a client reusing a connection just as the server closes it sees the request fail).
KEEP_ALIVE_S = 30


class Command(BaseCommand):
    help = "Serve Kefu with uvicorn after checking database, Redis and model settings."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=1)

    def handle(self, *args, host: str, port: int, workers: int, **options):
        exit_on_failure("web")
        self.stdout.write(f"Kefu serving on http://{host}:{port}/ (Ctrl-C to stop)")
        uvicorn.run("kefu.asgi:application", host=host, port=port, workers=workers,
                    lifespan="off", log_level="info", timeout_keep_alive=KEEP_ALIVE_S)
