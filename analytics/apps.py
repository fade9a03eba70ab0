"""Django app configuration for ``analytics``."""

from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Analytics"

    def ready(self) -> None:
        # lazy: apps.py is imported while Django loads the apps
        from django.db.models.signals import post_migrate

        # lazy: as above (kefu.roles reaches the auth models)
        from kefu.roles import roles_ensure_after_migrate

        # After the permissions of every app before it exist (analytics comes after kb and chat).
        post_migrate.connect(roles_ensure_after_migrate, sender=self, dispatch_uid="kefu-roles")
