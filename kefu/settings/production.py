"""Production settings: the embedded defaults plus what ``manage.py check --deploy`` asks.

Use with ``DJANGO_SETTINGS_MODULE=kefu.settings.production``. SECRET_KEY and
ALLOWED_HOSTS must come from the environment; TLS is assumed to end at a proxy
that sets ``X-Forwarded-Proto``.
"""

from kefu import config
from kefu.settings.base import *  # noqa: F403
from kefu.settings.base import env

KEFU_PRODUCTION = True
KEFU_DEMO_PAGE = False  # /chat/demo/ is a local try-out page: 404 here, whatever the environment says
DEBUG = False
SECRET_KEY = config.secret_key(env.str("SECRET_KEY", default=""), KEFU_DATA_DIR, required=True)  # noqa: F405
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
if not ALLOWED_HOSTS:
    raise config.ConfigError("ALLOWED_HOSTS is not set; production settings need the site's host names")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
WHITENOISE_USE_FINDERS = False
