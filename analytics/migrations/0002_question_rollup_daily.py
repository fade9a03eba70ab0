"""Question rollups become daily (top questions per UTC day × base × key); the next refresh rebuilds them."""

from django.db import migrations, models


def forget_watermark(apps, schema_editor):
    # The hourly question rows are dropped: the next refresh recomputes everything from the raw rows.
    apps.get_model("analytics", "RollupState").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("analytics", "0001_initial")]

    operations = [
        migrations.DeleteModel(name="QuestionRollup"),
        migrations.CreateModel(
            name="QuestionRollup",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("day", models.DateField()),
                ("knowledge_base_id", models.PositiveIntegerField()),
                ("widget_key_id", models.PositiveIntegerField(default=0)),
                ("question_key", models.CharField(max_length=40)),
                ("text", models.TextField()),
                ("asked", models.PositiveIntegerField(default=0)),
                ("cached", models.PositiveIntegerField(default=0)),
            ],
            options={"indexes": [models.Index(fields=["day", "knowledge_base_id"],
                                              name="analytics_question_day_kb")]},
        ),
        migrations.RunPython(forget_watermark, migrations.RunPython.noop),
    ]
