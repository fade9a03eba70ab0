"""What a web process starts beside serving requests.

The embedding model is loaded in a background thread (queries need it; loading
takes seconds, and the web process must start fast), followed by what the apps
registered with :func:`on_warmup` (chat: the shipped out-of-base questions' vectors that
answerability compares each question with; kb: the English word list of the speller) — so
the first customer does not wait for them. In embedded mode the inference engine also
starts here, in a thread of this process; in service mode it lives in the inference worker
instead.
"""

import logging
import threading
from collections.abc import Callable

from django.conf import settings
from django.core.signals import request_started

from inference.runtime import start_in_process_engine
from kb.embedding import warm_embedder
from kefu import compute

log = logging.getLogger(__name__)
_started = threading.Event()
_warmups: list[Callable[[], object]] = []  # what apps asked to load after the embedder (on_warmup)


def on_warmup(load: Callable[[], object]) -> None:
    """Run ``load`` in the web process's warm-up thread, after the embedder (once per registration)."""
    if load not in _warmups:
        _warmups.append(load)


def warm_up() -> None:
    """The embedder, then each registered warm-up; a failure is logged and the rest still run (a request
    that needs what failed loads it itself)."""
    warm_embedder()
    for load in list(_warmups):
        try:
            load()
        except Exception:
            log.exception("warm-up %s failed", getattr(load, "__qualname__", load))


def start_background_services() -> None:
    """Warm the models once per process; a no-op when KEFU_WARMUP is off or already done."""
    if _started.is_set():
        return
    _started.set()
    web_torch_threads_set()
    request_signals_trim()
    if not settings.KEFU_WARMUP:
        return
    threading.Thread(target=warm_up, name="kefu-warm-up", daemon=True).start()
    if settings.KEFU_MODE == "embedded":
        threading.Thread(target=start_in_process_engine, name="kefu-engine-start", daemon=True).start()
    log.info("kefu web process started in %s mode", settings.KEFU_MODE)


def web_torch_threads_set() -> None:
    """In service mode the web process's torch only embeds questions (one short text each), beside busy request
    threads: one intra-op thread (``KEFU_WEB_TORCH_THREADS``). With two, each kernel's OpenMP barrier waits
    for a thread the request threads have preempted — a query embedding took ~200 ms in a burst instead of
    ~10 ms (bench/profile_web.py). In embedded mode the generator shares the thread: torch's default stays."""
    threads = settings.KEFU_WEB_TORCH_THREADS
    if settings.KEFU_MODE == "embedded" or threads <= 0:
        return
    def set_threads() -> None:
        import torch  # lazy: the web process starts without torch; this runs on the compute thread

        torch.set_num_threads(threads)

    compute.compute_thread().submit(set_threads)  # on the compute thread, where every torch computation of the process runs


def request_signals_trim() -> None:
    """Drop kb's resume-on-first-request receiver where it can only return: in service mode the ingest worker
    resumes documents, and with ``KEFU_KB_RESUME_ON_START`` off nothing does. (kb.apps connects it in every
    process and disconnects it only after resuming in embedded mode.) A sync ``request_started`` receiver
    other than Django's own sends every chat request's signal through a thread of its own
    (:mod:`kefu.asgi_handler`)."""
    if settings.KEFU_MODE != "embedded" or not settings.KEFU_KB_RESUME_ON_START:
        request_started.disconnect(dispatch_uid="kb-resume-on-start")
