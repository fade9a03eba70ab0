"""ASGI entry point: ``uvicorn kefu.asgi:application``.

Settings errors and failed start-up checks end the server with one line. Requests to
async views (the chat API) are served without thread hops of Django's own
(:mod:`kefu.asgi_handler`). When the app is up, the models are warmed in background threads (and, in embedded mode,
the inference engine starts in this process) so ``/readyz`` turns ready by itself.
"""

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kefu.settings")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from kefu.asgi_handler import kefu_asgi_application  # noqa: E402
from kefu.config import ConfigError  # noqa: E402

try:
    application = kefu_asgi_application()
except ConfigError as exc:
    sys.stderr.write(f"kefu web: configuration error: {exc}\n")
    sys.exit(2)

from kefu import preflight, runtime  # noqa: E402

preflight.exit_on_failure("web")
runtime.start_background_services()
