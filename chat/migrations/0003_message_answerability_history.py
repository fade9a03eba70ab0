from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("chat", "0002_feedback_rating_updated_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="answerability",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="message",
            name="history_in_prompt",
            field=models.BooleanField(default=False),
        ),
    ]
