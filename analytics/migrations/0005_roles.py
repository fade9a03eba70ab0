"""The staff roles (kefu.roles): KB editor, Support agent, Analyst — Django groups holding Django permissions.

Upgrading keeps what people could do, except the hole this closes: a Django staff user (who could open
``/kb/`` and ``/staff/``) gets all three roles; a member of the old ``staff`` group (``/staff/`` only, yet able
to publish FAQ answers from knowledge gaps) becomes Support agent and Analyst — publishing needs KB editor.
"""

from django.db import migrations

from kefu.roles import ANALYST, KB_EDITOR, ROLES, SUPPORT_AGENT, roles_ensure

LEGACY_STAFF_GROUP = "staff"


def permissions_create(apps) -> None:
    """Django makes permissions after all migrations ran; the roles need them now."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None


def roles_create(apps, schema_editor) -> None:
    permissions_create(apps)
    roles_ensure(apps)
    group_model, user_model = apps.get_model("auth", "Group"), apps.get_model("auth", "User")
    roles = {name: group_model.objects.get(name=name) for name in ROLES}
    for user in user_model.objects.filter(is_staff=True, is_superuser=False):
        user.groups.add(*roles.values())
    for user in user_model.objects.filter(groups__name=LEGACY_STAFF_GROUP, is_staff=False, is_superuser=False):
        user.groups.add(roles[SUPPORT_AGENT], roles[ANALYST])


def roles_remove(apps, schema_editor) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=[KB_EDITOR, SUPPORT_AGENT, ANALYST]).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0004_visitor_sketch"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("kb", "0006_regression_gate"),
        ("chat", "0003_message_answerability_history"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="rollupstate",
            options={"permissions": [("view_dashboard", "Can view the staff dashboard and its reports")]},
        ),
        migrations.RunPython(roles_create, roles_remove),
    ]
