"""``manage.py demo_setup``: what ``make demo`` needs once, before serving.

Creates the ``admin`` superuser with a random password printed once (only when no
superuser exists yet), the demo knowledge base from the zaragoza FAQ with its chat
profile (extractive answers with the bundled CPU generator), its embedder's tuning on its own FAQ
queued once for the server to run in the background (``--tune-now`` runs it here and waits, ~11 minutes on 2 Zen 4
cores with its all-mpnet-base-v2; ``--no-tune`` skips it), and the demo base's widget
key for ``/chat/demo/``, allowing the origins of ``KEFU_DEMO_ORIGINS`` and each
``--origin`` (the page itself never creates or widens a key). The Chinese demo base from
Debian's Chinese FAQ (debian-faq-zh-cn) gets the same, for ``/chat/demo/zh/``; without
that package it is skipped with one line. Running it again changes nothing but origins
not allowed yet.
"""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from chat.services import demo_knowledge_base, demo_profile_ensure, demo_slugs, demo_widget_key_ensure
from kb.demo import (
    demo_tuning_queue,
    ensure_demo_knowledge_base,
    ensure_demo_tuned,
    ensure_demo_zh_knowledge_base,
)


class Command(BaseCommand):
    help = "Create the demo admin user (password printed once), the demo knowledge base and its widget key."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--origin", action="append", default=[], metavar="URL",
                            help="also allow the demo widget key on this origin, e.g. http://kefu.test:8000 "
                                 "(repeatable; KEFU_DEMO_ORIGINS are always allowed)")
        tuning = parser.add_mutually_exclusive_group()
        tuning.add_argument("--no-tune", action="store_true",
                            help="do not tune the demo base's embedder on its own FAQ (queued once otherwise)")
        tuning.add_argument("--tune-now", action="store_true",
                            help="tune it here and wait, instead of leaving it to the server's background")

    def handle(self, *args, **options) -> None:
        self.ensure_admin()
        self.ensure_demo_knowledge_base(origins=[*settings.KEFU_DEMO_ORIGINS, *options["origin"]])
        if options["tune_now"]:
            self.stdout.write(ensure_demo_tuned(self.stdout))
        elif not options["no_tune"]:
            self.stdout.write(demo_tuning_queue())

    def ensure_admin(self) -> None:
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            self.stdout.write("Admin: an administrator already exists (reset with `manage.py changepassword admin`).")
            return
        password = secrets.token_urlsafe(12)
        users.objects.create_superuser("admin", "admin@localhost", password)
        self.stdout.write(self.style.SUCCESS(
            f"Admin created — user: admin  password: {password}  (shown once; sign in at /admin/)"))

    def ensure_demo_knowledge_base(self, *, origins: list[str]) -> None:
        self.stdout.write(ensure_demo_knowledge_base())
        self.stdout.write(ensure_demo_zh_knowledge_base())
        for slug in demo_slugs():
            kb = demo_knowledge_base(slug)
            if kb is not None:
                self.stdout.write(demo_profile_ensure(knowledge_base=kb))
                self.stdout.write(demo_widget_key_ensure(knowledge_base=kb, origins=origins))
