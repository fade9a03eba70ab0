"""``manage.py demo_setup``: what ``make demo`` needs once, before serving.

Creates the ``admin`` superuser with a random password printed once (only when no
superuser exists yet), and the demo knowledge base from the zaragoza FAQ when the
kb app provides it, with its chat profile (extractive answers with the bundled CPU
generator). Running it again changes nothing.
"""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the demo admin user (password printed once) and the demo knowledge base."

    def handle(self, *args, **options):
        self.ensure_admin()
        self.ensure_demo_knowledge_base()

    def ensure_admin(self) -> None:
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            self.stdout.write("Admin: an administrator already exists (reset with `manage.py changepassword admin`).")
            return
        password = secrets.token_urlsafe(12)
        users.objects.create_superuser("admin", "admin@localhost", password)
        self.stdout.write(self.style.SUCCESS(
            f"Admin created — user: admin  password: {password}  (shown once; sign in at /admin/)"))

    def ensure_demo_knowledge_base(self) -> None:
        try:
            from kb.demo import ensure_demo_knowledge_base
        except ImportError:
            self.stdout.write("Demo knowledge base: the kb app has no demo loader yet; skipped.")
            return
        self.stdout.write(ensure_demo_knowledge_base())
        from chat.services import demo_knowledge_base, demo_profile_ensure

        kb = demo_knowledge_base()
        if kb is not None:
            self.stdout.write(demo_profile_ensure(knowledge_base=kb))
