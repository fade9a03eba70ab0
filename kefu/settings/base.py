"""Settings shared by every mode; see :mod:`kefu.settings` for how the mode is chosen."""

import os
from datetime import timedelta
from pathlib import Path

import environ
from kombu import Queue

from kefu import config

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()

# --- where Kefu keeps its files ---------------------------------------------------------
KEFU_DATA_DIR = config.data_dir(env.str("KEFU_DATA_DIR", default=""), BASE_DIR / "data")
KEFU_PRODUCTION = False

SECRET_KEY = config.secret_key(env.str("SECRET_KEY", default=""), KEFU_DATA_DIR, required=False)
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- mode --------------------------------------------------------------------------------
REDIS_URL = config.redis_url(env.str("REDIS_URL", default=""))
KEFU_MODE = "service" if REDIS_URL else "embedded"

# --- models ------------------------------------------------------------------------------
# A bundled name (see inference.catalog) or a local Hugging Face model directory.
KEFU_MODEL = env.str("KEFU_MODEL", default="smollm2-135m")
# "transformers" (in-process, default), "openai" (any OpenAI-compatible endpoint) or "vllm".
KEFU_MODEL_BACKEND = env.str("KEFU_MODEL_BACKEND", default="transformers")
KEFU_OPENAI_BASE_URL = env.str("KEFU_OPENAI_BASE_URL", default="")
KEFU_OPENAI_API_KEY = env.str("KEFU_OPENAI_API_KEY", default="")
KEFU_DEVICE = env.str("KEFU_DEVICE", default="auto")
KEFU_DTYPE = env.str("KEFU_DTYPE", default="auto")
KEFU_QUANTIZATION = env.str("KEFU_QUANTIZATION", default="auto")  # fp16 weights for dense fp32 on CPU
KEFU_MAX_BATCH = config.positive_int("KEFU_MAX_BATCH", env.int("KEFU_MAX_BATCH", default=8))
KEFU_MAX_NEW_TOKENS = config.positive_int(
    "KEFU_MAX_NEW_TOKENS", env.int("KEFU_MAX_NEW_TOKENS", default=512), maximum=32768
)
# Seconds a single generation may run before it is stopped and reported as failed.
KEFU_GENERATION_TIMEOUT = config.positive_int(
    "KEFU_GENERATION_TIMEOUT", env.int("KEFU_GENERATION_TIMEOUT", default=300)
)
# A bundled name ("all-minilm-l6-v2", "all-mpnet-base-v2") or a local sentence-transformers directory: the model
# new bases name (each base can name another). all-minilm-l6-v2 keeps a burst of fresh questions fast on a CPU;
# all-mpnet-base-v2 — the demo base's — matches customers' wording to a base's entries better, at ~3x the CPU per
# question and ~6x the tuning time (BENCHMARKS.md, Answer quality and Under load).
KEFU_EMBEDDING_MODEL = env.str("KEFU_EMBEDDING_MODEL", default="all-minilm-l6-v2")
# The model the demo bases name when demo_setup creates them.
KEFU_DEMO_EMBEDDING_MODEL = env.str("KEFU_DEMO_EMBEDDING_MODEL", default="all-mpnet-base-v2")
# More embedding models a knowledge base may name: "name=/local/dir,name2=/dir2" (sentence-transformers dirs).
KEFU_EMBEDDING_MODELS = config.embedding_models(env.str("KEFU_EMBEDDING_MODELS", default=""))
# Memory (parameter MB) the loaded embedding models of a process may hold; least recently used ones go first.
# 1000: all-mpnet-base-v2 (438 MB in float32, half that in bf16) and one base's tuned copy of it beside the default.
KEFU_EMBEDDER_CACHE_MB = config.positive_int("KEFU_EMBEDDER_CACHE_MB", env.int("KEFU_EMBEDDER_CACHE_MB", default=1000))
# auto: bf16 on CPUs with AMX/AVX512-BF16 (2.7x the texts/s, cosine to fp32 >= 0.998), else float32
KEFU_EMBEDDING_DTYPE = env.str("KEFU_EMBEDDING_DTYPE", default="auto")
# Load the embedder and the generator when the web process starts (off in tests).
KEFU_WARMUP = env.bool("KEFU_WARMUP", default=True)
# Seconds a starting process keeps retrying (with backoff) a database that does not answer yet.
KEFU_DATABASE_WAIT = env.float("KEFU_DATABASE_WAIT", default=10.0)

# --- uploads -----------------------------------------------------------------------------
KEFU_MAX_UPLOAD_BYTES = env.int("KEFU_MAX_UPLOAD_BYTES", default=50 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# A file upload above this is spooled to a temporary file as it arrives (not held in memory), and one past
# KEFU_MAX_UPLOAD_BYTES is stopped at that byte (kefu.uploads).
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_HANDLERS = [
    "kefu.uploads.SizeLimitUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
MEDIA_ROOT = KEFU_DATA_DIR / "uploads"
MEDIA_URL = "/media/"

# --- knowledge bases (kb app) ------------------------------------------------------------
# Reciprocal-rank fusion: score = sum over retrievers of weight / (KEFU_KB_RRF_K + rank). 5, not the
# customary 60: tuning picked k=5 on all three evaluation sets (BENCHMARKS.md, "Knowledge base").
KEFU_KB_RRF_K = env.int("KEFU_KB_RRF_K", default=5)
# Dense weight for new knowledge bases (BM25 gets 1 - it); each base stores its own, tuned on its FAQ pairs.
KEFU_KB_DENSE_WEIGHT = env.float("KEFU_KB_DENSE_WEIGHT", default=0.7)
# The same for bases with Chinese when the embedder is English-only (the bundled MiniLM): dense is near noise there.
KEFU_KB_DENSE_WEIGHT_CJK = env.float("KEFU_KB_DENSE_WEIGHT_CJK", default=0.2)
# Candidates each retriever hands to fusion.
KEFU_KB_CANDIDATES = env.int("KEFU_KB_CANDIDATES", default=100)
# Exact (flat) FAISS index below this many vectors, HNSW above.
KEFU_KB_HNSW_THRESHOLD = env.int("KEFU_KB_HNSW_THRESHOLD", default=50000)
# Store every passage's word-piece vectors with each local index version (kb.retrieval.token_store), so late
# interaction reads them instead of running the embedder over the head of every fused list; 0: computed per question.
KEFU_KB_TOKEN_STORE = env.bool("KEFU_KB_TOKEN_STORE", default=True)
# Where retrieval runs: "local" (each process holds FAISS + BM25 indexes built from the database) or "milvus"
# (one shared Milvus: BM25 full-text and dense search server-side; kb.search_backends.milvus).
KEFU_SEARCH_BACKEND = env.str("KEFU_SEARCH_BACKEND", default="local")
# Milvus: a file path means Milvus Lite (tests, one machine); http://host:19530 a Milvus standalone or cluster.
KEFU_MILVUS_URI = env.str("KEFU_MILVUS_URI", default="")
KEFU_MILVUS_TOKEN = env.str("KEFU_MILVUS_TOKEN", default="")
KEFU_MILVUS_DB = env.str("KEFU_MILVUS_DB", default="")
# Seconds a Milvus call may take before the request is answered with a 503.
KEFU_MILVUS_TIMEOUT_S = env.float("KEFU_MILVUS_TIMEOUT_S", default=10.0)
# Texts per embedding batch during ingestion.
KEFU_KB_EMBED_BATCH = env.int("KEFU_KB_EMBED_BATCH", default=64)
# Queued documents of one knowledge base ingested together: their chunks share embedding batches
# (one encode per KEFU_KB_EMBED_BATCH texts, not one per document) and one index build. 1 = one by one.
KEFU_KB_INGEST_BATCH = env.int("KEFU_KB_INGEST_BATCH", default=64)
# An unfinished document whose progress has not moved for this long is an orphan a task may claim again.
KEFU_KB_CLAIM_STALE_S = env.int("KEFU_KB_CLAIM_STALE_S", default=600)
# Re-enqueue documents left queued/processing when an embedded web process starts.
KEFU_KB_RESUME_ON_START = env.bool("KEFU_KB_RESUME_ON_START", default=True)
# Longest document text accepted, in characters (~1,700 pages): ingestion stays bounded in time
# (5 M characters ≈ 6,000 chunks ≈ 2 minutes of embedding on 2 cores); longer ones fail with a reason.
KEFU_KB_MAX_DOCUMENT_CHARS = env.int("KEFU_KB_MAX_DOCUMENT_CHARS", default=5_000_000)

# --- chat app (customer side): guard, cache, intent, answers ------------------------------
# Longest question accepted, in characters after normalisation.
KEFU_CHAT_MAX_QUESTION_CHARS = env.int("KEFU_CHAT_MAX_QUESTION_CHARS", default=2000)
# Sliding-window rate limits (requests, window seconds) per widget key, client IP and conversation.
KEFU_CHAT_RATE_LIMITS = {
    "key": (env.int("KEFU_CHAT_RATE_PER_KEY", default=600), 60),
    "ip": (env.int("KEFU_CHAT_RATE_PER_IP", default=30), 60),
    "conversation": (env.int("KEFU_CHAT_RATE_PER_CONVERSATION", default=12), 60),
}
# The demo company page /chat/demo/ (for trying Kefu; always off under kefu.settings.production), and the
# origins `manage.py demo_setup` lets the demo base's widget key be used from (more with --origin).
KEFU_DEMO_PAGE = env.bool("KEFU_DEMO_PAGE", default=True)
KEFU_DEMO_ORIGINS = env.list("KEFU_DEMO_ORIGINS", default=["http://127.0.0.1:8000", "http://localhost:8000"])
# "Talk to a person" requests (requests, window seconds) per client IP and per conversation. A conversation
# already handed off answers with its existing notice and stores nothing, so these bound only the lookups.
# GETs of the chat API (message streams, live events, history) per client address and minute.
KEFU_CHAT_READ_RATE_LIMIT = (env.int("KEFU_CHAT_READ_RATE_PER_IP", default=240), 60)
# SSE streams one client address (IPv6: its /64) holds open at once, and live-event streams per conversation.
KEFU_CHAT_STREAMS_PER_IP = env.int("KEFU_CHAT_STREAMS_PER_IP", default=30)
KEFU_CHAT_LIVE_STREAMS_PER_CONVERSATION = env.int("KEFU_CHAT_LIVE_STREAMS_PER_CONVERSATION", default=5)
# A chat API request body larger than this is refused (413) before it is read or parsed.
KEFU_CHAT_MAX_BODY_BYTES = env.int("KEFU_CHAT_MAX_BODY_BYTES", default=64 * 1024)
KEFU_HANDOFF_RATE_LIMITS = {
    "ip": (env.int("KEFU_HANDOFF_RATE_PER_IP", default=10), 60),
    "conversation": (env.int("KEFU_HANDOFF_RATE_PER_CONVERSATION", default=3), 60),
}
# Networks (CIDR) of the reverse proxies in front of the web process. Only a request whose socket peer is
# in one of them has its X-Forwarded-For read (for rate limits); empty: the header is ignored.
KEFU_TRUSTED_PROXIES = env.list("KEFU_TRUSTED_PROXIES", default=[])
# Semantic answer-cache hit: cosine between question embeddings at or above this.
KEFU_CHAT_CACHE_SIMILARITY = env.float("KEFU_CHAT_CACHE_SIMILARITY", default=0.95)
# Recent cached answers compared per base and index version in the semantic lookup.
KEFU_CHAT_CACHE_SIZE = env.int("KEFU_CHAT_CACHE_SIZE", default=2000)
# Passages below this dense cosine with the question are not used (a base may override it).
KEFU_CHAT_RELEVANCE_FLOOR = env.float("KEFU_CHAT_RELEVANCE_FLOOR", default=0.35)
# Tokens of earlier turns sent with a question (approximate count).
KEFU_CHAT_HISTORY_TOKENS = env.int("KEFU_CHAT_HISTORY_TOKENS", default=600)
# max_new_tokens for knowledge answers and for chitchat replies.
KEFU_CHAT_ANSWER_TOKENS = env.int("KEFU_CHAT_ANSWER_TOKENS", default=256)
KEFU_CHAT_CHITCHAT_TOKENS = env.int("KEFU_CHAT_CHITCHAT_TOKENS", default=48)
# Characters of a generated reply (CJK counted double) held back until the output gate passes them
# (chat/pipeline/output_gate.py); a shorter reply is held whole. 0: shown as it comes, checked at the end.
KEFU_CHAT_GATE_HOLD_CHARS = env.int("KEFU_CHAT_GATE_HOLD_CHARS", default=40)
# Seconds between SSE heartbeat comments.
KEFU_CHAT_HEARTBEAT_S = env.float("KEFU_CHAT_HEARTBEAT_S", default=15.0)
# Database connections one web process opens at most for the chat API (chat/db_slots.py), and the seconds
# a request waits for one before a 503. Size web processes × this + workers under PostgreSQL's max_connections.
KEFU_WEB_DB_CONNECTIONS = env.int("KEFU_WEB_DB_CONNECTIONS", default=16)
KEFU_WEB_DB_WAIT_S = env.float("KEFU_WEB_DB_WAIT_S", default=60.0)
# Threads that run the chat API's database work (chat.db_slots.db_call); 0 = asgiref's thread per request.
KEFU_WEB_DB_THREADS = env.int("KEFU_WEB_DB_THREADS", default=4)
# Seconds a web process remembers a widget key and a chat profile (chat.lookups; 0 = read them every request).
KEFU_WEB_LOOKUP_TTL_S = env.float("KEFU_WEB_LOOKUP_TTL_S", default=2.0)
# Answer-cache hit counts are written at most this often per process (0 = on every hit).
KEFU_CHAT_CACHE_HITS_FLUSH_S = env.float("KEFU_CHAT_CACHE_HITS_FLUSH_S", default=1.0)

# --- operator metrics (analytics app) -----------------------------------------------------
# /metrics needs "Authorization: Bearer <token>" when a token is set, else a client address
# inside one of the allowed networks.
KEFU_METRICS_TOKEN = env.str("KEFU_METRICS_TOKEN", default="")
KEFU_METRICS_ALLOWED_NETWORKS = env.list("KEFU_METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"])
# Several web processes on one host share their samples through this directory.
if env.str("KEFU_PROMETHEUS_MULTIPROC_DIR", default=""):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = env.str("KEFU_PROMETHEUS_MULTIPROC_DIR")
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

# --- Django ------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "kefu.apps.KefuConfig",
    "kb.apps.KbConfig",
    "inference.apps.InferenceConfig",
    "chat.apps.ChatConfig",
    "analytics.apps.AnalyticsConfig",
    "axes",  # sign-in throttling (below)
]

MIDDLEWARE = [
    "analytics.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "kefu.static_files.AsyncWhiteNoiseMiddleware",  # WhiteNoise, async-capable (no thread hop per request)
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The page's language: the switcher's cookie, else the browser's Accept-Language (the widget sends its own).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out sign-in into its 429
]

ROOT_URLCONF = "kefu.urls"
ASGI_APPLICATION = "kefu.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# PostgreSQL connections each process keeps open in a pool (0: open one per use). More than the chat API's
# slots: background threads (index loading, metrics) hold a connection of their own.
KEFU_DB_POOL_SIZE = env.int("KEFU_DB_POOL_SIZE", default=KEFU_WEB_DB_CONNECTIONS + 8)
DATABASES = {"default": config.database_from_url(env.str("DATABASE_URL", default=""), KEFU_DATA_DIR,
                                                 pool_size=KEFU_DB_POOL_SIZE)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The one staff sign-in, for /staff/, /kb/ and /admin/ (/admin/login/ redirects to it: kefu/urls.py).
LOGIN_URL = "analytics:login"

# Sign-in throttling (django-axes, failures stored in the database: SQLite or PostgreSQL). After
# KEFU_LOGIN_FAILURE_LIMIT failed sign-ins for one username from one client address — or from one address
# whatever the usernames — that address gets 429 on the staff sign-in for KEFU_LOGIN_COOLOFF_MINUTES.
# A success resets the count. The address is read as for rate limits (X-Forwarded-For only from
# KEFU_TRUSTED_PROXIES). `manage.py axes_reset` lifts every lock.
AUTHENTICATION_BACKENDS = [
    "kefu.auth_backends.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("KEFU_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("KEFU_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "kefu.auth_backends.login_client_address"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
# The interface languages; zh-CN, zh-SG and plain zh in Accept-Language all pick zh-hans.
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
# Catalogs: locale/<lang>/LC_MESSAGES/django.po, compiled to .mo by `make install` (kefu.catalogs).
LOCALE_PATHS = [BASE_DIR / "locale"]
# English staff dates stay ISO-like (Y-m-d H:i); Chinese takes Django's zh_Hans formats.
FORMAT_MODULE_PATH = ["kefu.formats"]
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = KEFU_DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve straight from the apps' folders when collectstatic has not run (embedded demo, tests).
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- cache -------------------------------------------------------------------------------
if REDIS_URL:
    CACHES = {
        "default": {
            # Django's Redis cache, with one connection pool per process (kefu.redis_cache)
            "BACKEND": "kefu.redis_cache.SharedRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "kefu",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 5},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "kefu"}}

# --- Celery ------------------------------------------------------------------------------
# Service mode only: in embedded mode kefu.background runs the same task bodies in threads
# of the web process, because an eager task would block the request that enqueued it.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_QUEUES = (Queue("default"), Queue("ingest"), Queue("inference"))
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "kb.*": {"queue": "ingest"},
    "inference.*": {"queue": "inference"},
}
# Long GPU tasks: acknowledge after the work, take one message at a time, and hand the
# message back when the worker dies so another worker (or the reaper) can see it.
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TRACK_STARTED = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = KEFU_GENERATION_TIMEOUT + 60
CELERY_TASK_SOFT_TIME_LIMIT = KEFU_GENERATION_TIMEOUT + 30
# Redis re-delivers an unacknowledged message after the visibility timeout; it must be
# longer than the longest task or a slow generation would run twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": max(3600, 4 * CELERY_TASK_TIME_LIMIT)}
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- logging -----------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # faiss logs at INFO which CPU-specific module (AVX-512, AVX2) it could not load before falling back.
        "faiss.loader": {"level": "WARNING"},
    },
}

# --- inference (issue 4; owned by the inference app, read through inference.config) -------
# Events kept per token stream (Redis XADD MAXLEN ~) and seconds a stream lives after its last event.
KEFU_STREAM_MAXLEN = env.int("KEFU_STREAM_MAXLEN", default=4096)
KEFU_STREAM_TTL = env.int("KEFU_STREAM_TTL", default=3600)
# A job still "running" this many seconds after it started is reaped as failed (its worker died).
KEFU_GENERATION_STALE_AFTER = env.int("KEFU_GENERATION_STALE_AFTER", default=KEFU_GENERATION_TIMEOUT + 60)
# An inference worker's heartbeat key (Redis) expires this many seconds after its last write
# (written every third of it); a job whose worker's heartbeat is gone was lost with that worker.
KEFU_INFERENCE_HEARTBEAT_TTL = config.positive_int(
    "KEFU_INFERENCE_HEARTBEAT_TTL", env.int("KEFU_INFERENCE_HEARTBEAT_TTL", default=15))
# A stream reader that saw no event of a running job for this many seconds checks its worker's
# heartbeat and, when it is gone, fails the job (worker_lost) so the customer gets an error event.
KEFU_GENERATION_STALL_SECONDS = config.positive_int(
    "KEFU_GENERATION_STALL_SECONDS", env.int("KEFU_GENERATION_STALL_SECONDS", default=5))
# CPU torch intra-op threads for the generator (0 = torch's default: one per core).
KEFU_TORCH_THREADS = env.int("KEFU_TORCH_THREADS", default=0)
# Service mode: torch intra-op threads of a web process, which only embeds questions (0 = torch's default).
KEFU_WEB_TORCH_THREADS = env.int("KEFU_WEB_TORCH_THREADS", default=1)
# Prompt tokens the engine prefills together in one pass (longer prompts go one per pass).
KEFU_PREFILL_TOKEN_BUDGET = env.int("KEFU_PREFILL_TOKEN_BUDGET", default=512)
# Keys/values of this many system prompts kept by the engine for the next chat that starts with one (0 = off).
KEFU_PREFIX_CACHE_ENTRIES = env.int("KEFU_PREFIX_CACHE_ENTRIES", default=8)
# Inference worker: serve its Prometheus metrics (TTFT, ITL, tokens, expert load) on this port; 0 = off.
KEFU_INFERENCE_METRICS_PORT = env.int("KEFU_INFERENCE_METRICS_PORT", default=0)
# The reaper runs every minute under `celery -A kefu beat` (and on every stream read that waits).
CELERY_BEAT_SCHEDULE = {
    "inference-reap-stale": {"task": "inference.reap_stale", "schedule": 60.0, "options": {"queue": "inference"}},
    # Documents whose ingestion stopped making progress (a killed ingest worker) are re-enqueued.
    "kb-reclaim-stale-documents": {"task": "kb.reclaim_stale_documents", "schedule": 300.0,
                                   "options": {"queue": "ingest"}},
}

# --- analytics rollups (analytics app) ----------------------------------------------------
# Beat recomputes the stale hourly rollups every few minutes in service mode (embedded mode
# recomputes them when a staff member opens the dashboard). Merged into the schedule above.
KEFU_ANALYTICS_ROLLUP_EVERY_S = env.float("KEFU_ANALYTICS_ROLLUP_EVERY_S", default=300.0)
# Embedded mode: a dashboard opened less than this many seconds after the last refresh reuses it.
KEFU_ANALYTICS_REFRESH_AFTER_S = env.float("KEFU_ANALYTICS_REFRESH_AFTER_S", default=60.0)
CELERY_BEAT_SCHEDULE = {
    **globals().get("CELERY_BEAT_SCHEDULE", {}),
    "analytics-rollup": {"task": "analytics.rollup", "schedule": KEFU_ANALYTICS_ROLLUP_EVERY_S,
                         "options": {"queue": "default"}},
}
