"""Django app configuration for ``analytics``."""

from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Analytics"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from kefu.roles import roles_ensure_after_migrate

        # After the permissions of every app before it exist (analytics comes after kb and chat).
        post_migrate.connect(roles_ensure_after_migrate, sender=self, dispatch_uid="kefu-roles")
