import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("kb", "0005_embedding_model_tuning"),
    ]

    operations = [
        migrations.AlterField(
            model_name="indexversion",
            name="status",
            field=models.CharField(choices=[("building", "Building"), ("ready", "Ready"), ("failed", "Failed"),
                                            ("held", "Held")], default="building", max_length=20),
        ),
        migrations.AddField(
            model_name="indexversion",
            name="gate",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.CreateModel(
            name="EvalCase",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("question", models.TextField()),
                ("origin", models.CharField(choices=[("gap", "confirmed through a knowledge gap"),
                                                     ("feedback", "a resolved thumbs-down"),
                                                     ("staff", "added by staff")], default="staff", max_length=20)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("document", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE,
                                               related_name="+", to="kb.document")),
                ("faq_entry", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE,
                                                related_name="+", to="kb.faqentry")),
                ("knowledge_base", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                                     related_name="eval_cases", to="kb.knowledgebase")),
            ],
            options={
                "ordering": ["id"],
                "constraints": [
                    models.UniqueConstraint(fields=("knowledge_base", "question"), name="kb_evalcase_unique_question"),
                    models.CheckConstraint(condition=models.Q(("faq_entry__isnull", False), ("document__isnull", False),
                                                              _connector="OR"), name="kb_evalcase_has_source"),
                ],
            },
        ),
    ]
