"""The ``kefu`` project package as a Django app, so it can hold management commands."""

from django.apps import AppConfig


class KefuConfig(AppConfig):
    name = "kefu"
    verbose_name = "Kefu"
