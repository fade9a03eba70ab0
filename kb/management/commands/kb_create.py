"""``manage.py kb_create NAME [--slug] [--languages] [--chunk-size] [--chunk-overlap] [--top-k] [--embedding-model]``."""

from django.core.management.base import BaseCommand, CommandError

from kb.services import knowledge_base_create
from kefu.config import ConfigError


class Command(BaseCommand):
    help = "Create a knowledge base."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--slug", default="")
        parser.add_argument("--languages", default="en", help="comma-separated, e.g. en,zh")
        parser.add_argument("--chunk-size", type=int, default=200)
        parser.add_argument("--chunk-overlap", type=int, default=30)
        parser.add_argument("--top-k", type=int, default=5)
        parser.add_argument("--embedding-model", default="",
                            help="a bundled model or a name in KEFU_EMBEDDING_MODELS (default: KEFU_EMBEDDING_MODEL)")

    def handle(self, *args, name, slug, languages, chunk_size, chunk_overlap, top_k, embedding_model, **options):
        try:
            kb = knowledge_base_create(name=name, slug=slug, languages=languages, chunk_size=chunk_size,
                                       chunk_overlap=chunk_overlap, top_k=top_k, embedding_model=embedding_model)
        except (ValueError, ConfigError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Created knowledge base {kb.name!r} (slug {kb.slug}, id {kb.pk})."))
