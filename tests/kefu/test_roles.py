"""One permission model for /kb/ and /staff/ (issue 16: 13): roles are Django groups holding Django permissions,
created by a data migration; every staff view names the permissions it needs."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from kb.models import FaqEntry
from kefu.roles import ANALYST, KB_EDITOR, ROLES, SUPPORT_AGENT
from tests.analytics import seed
from tests.conftest import staff_member

ROLE_NAMES = (KB_EDITOR, SUPPORT_AGENT, ANALYST)


@pytest.fixture
def shop(db):
    kb = seed.knowledge_base("shop")
    return kb, seed.conversation(kb, at=timezone.now(), status="handed_off")


def requests_of(kb, conversation) -> dict[str, tuple[str, str, dict]]:
    """What each capability looks like as a request. Authorised, each answers without changing anything
    worth a fixture (a form error, a missing conversation); refused, each is a 403."""
    return {
        "open the knowledge bases": ("get", "/kb/", {}),
        "edit a FAQ": ("post", f"/kb/{kb.slug}/faq/", {"question": "", "answer": ""}),
        "open the dashboard": ("get", "/staff/gaps/", {}),
        "publish a gap as a FAQ": ("post", "/staff/gaps/faq", {"knowledge_base": kb.pk, "question": "q"}),
        "read a transcript": ("get", f"/staff/conversations/{conversation.public_id}/", {}),
        "close a conversation": ("post", "/staff/conversations/no-such-one/close", {}),
    }


ALLOWED = {  # capability → the status an authorised request gets
    "open the knowledge bases": 200, "edit a FAQ": 400, "open the dashboard": 200, "publish a gap as a FAQ": 400,
    "read a transcript": 200, "close a conversation": 404,
}
MATRIX = {
    KB_EDITOR: {"open the knowledge bases", "edit a FAQ", "open the dashboard", "publish a gap as a FAQ",
                "read a transcript"},
    SUPPORT_AGENT: {"read a transcript", "close a conversation"},
    ANALYST: {"open the knowledge bases", "open the dashboard", "read a transcript"},
}


def test_the_migration_creates_the_three_roles_with_their_permissions(db):
    # given a migrated database / then each role is a group holding exactly its permissions
    for name in ROLE_NAMES:
        granted = {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name=name).permissions.all()}
        assert granted == set(ROLES[name]), name


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_each_role_reaches_exactly_its_pages(client, shop, role):
    # given a signed-in member of one role (not Django staff)
    client.force_login(staff_member(f"member-{role}", password="pw-role-123", roles=(role,)))
    # when every staff capability is tried
    for capability, (method, url, data) in requests_of(*shop).items():
        status = getattr(client, method)(url, data).status_code
        # then only the role's own ones are allowed
        expected = ALLOWED[capability] if capability in MATRIX[role] else 403
        assert status == expected, f"{role}: {capability} answered {status}"


def test_a_member_of_the_old_staff_group_cannot_publish_faq_answers_through_gaps(client, shop):
    kb, _ = shop
    # given a member of the "staff" group who is not Django staff (before: /staff/ yes, /kb/ no, yet FAQ writes)
    user = User.objects.create_user("grp", password="pw-grp-123")
    user.groups.add(Group.objects.get_or_create(name="staff")[0])
    client.force_login(user)
    # when they publish an answer from the knowledge-gaps page
    response = client.post("/staff/gaps/faq", {"knowledge_base": kb.pk, "question": "Do you ship to Oslo?",
                                               "answer": "Yes, in 3 days."})
    # then it is refused, as /kb/ refuses them, and no FAQ entry exists
    assert response.status_code == 403
    assert client.get("/kb/").status_code == 403
    assert not FaqEntry.objects.exists()


def test_django_staff_without_a_role_opens_only_the_admin(client, shop):
    # given a Django staff user in no role
    client.force_login(User.objects.create_user("ops", password="pw-ops-123", is_staff=True))
    # then neither /kb/ nor /staff/ opens (is_staff is the admin's flag, not a role)
    assert client.get("/kb/").status_code == 403 and client.get("/staff/").status_code == 403


def test_a_superuser_reaches_every_page(client, shop):
    client.force_login(User.objects.create_superuser("root", password="pw-root-123"))
    for capability, (method, url, data) in requests_of(*shop).items():
        assert getattr(client, method)(url, data).status_code == ALLOWED[capability], capability


@pytest.mark.django_db(transaction=True)
def test_upgrading_keeps_what_people_could_do_except_publishing_from_the_staff_group():
    executor = MigrationExecutor(connection)
    before = [("analytics", "0004_visitor_sketch")]
    latest = executor.loader.graph.leaf_nodes("analytics")
    # given the schema before the roles, a Django staff user and an old "staff" group member
    executor.migrate(before)
    Group.objects.filter(name__in=ROLE_NAMES).delete()
    django_staff = User.objects.create_user("ops", password="pw-ops-123", is_staff=True)
    member = User.objects.create_user("grp", password="pw-grp-123")
    member.groups.add(Group.objects.create(name="staff"))
    # when the roles migration runs
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(latest)
    # then Django staff hold every role (they could open /kb/ and /staff/), the group member support and analysis
    assert set(django_staff.groups.values_list("name", flat=True)) == set(ROLE_NAMES)
    assert set(member.groups.values_list("name", flat=True)) == {"staff", SUPPORT_AGENT, ANALYST}


def test_pages_offer_only_what_the_role_may_do(client, shop):
    kb, conversation = shop
    # given an analyst reading a handed-off conversation and the dashboard
    client.force_login(staff_member("ana", password="pw-ana-12345", roles=(ANALYST,)))
    transcript = client.get(f"/staff/conversations/{conversation.public_id}/").content.decode()
    nav = client.get("/staff/").content.decode()
    # then no reply or close form is offered, and the navigation shows what the role opens
    assert "conversation-reply" not in transcript and "/reply" not in transcript and "/close" not in transcript
    assert 'href="/staff/inbox/"' in nav and 'href="/kb/"' in nav
    # while a support agent sees the forms and no dashboard link
    client.force_login(staff_member("sam", password="pw-sam-12345", roles=(SUPPORT_AGENT,)))
    assert "/reply" in client.get(f"/staff/conversations/{conversation.public_id}/").content.decode()
    assert 'href="/staff/gaps/' not in client.get("/staff/inbox/").content.decode()


# --- per-base scoping -------------------------------------------------------------------------------------------
@pytest.fixture
def scoped(db):
    """Base A restricted to group "Team A", base B to "Team B", base C open to every role; a KB editor in Team A."""
    bases = {name: seed.knowledge_base(name) for name in ("a", "b", "c")}
    for name in ("a", "b"):
        bases[name].staff_groups.add(Group.objects.create(name=f"Team {name.upper()}"))
    editor = staff_member("ed", password="pw-ed-12345", roles=(KB_EDITOR,))
    editor.groups.add(Group.objects.get(name="Team A"))
    conversations = {name: seed.conversation(kb, at=timezone.now(), status="handed_off")
                     for name, kb in bases.items()}
    return bases, conversations, editor


def test_a_scoped_editor_reaches_only_its_bases_and_the_open_ones(client, scoped):
    bases, conversations, editor = scoped
    client.force_login(editor)
    # /kb/ lists A and C; B's pages are not found
    listing = client.get("/kb/").content.decode()
    assert "/kb/a/" in listing and "/kb/c/" in listing and "/kb/b/" not in listing
    assert client.get("/kb/b/").status_code == 404 and client.get("/kb/a/").status_code == 200
    assert client.post("/kb/b/faq/", {"question": "Planted?", "answer": "Yes."}).status_code == 404
    # a gap of B cannot be published, B's transcript is not found, B's dashboard is refused
    response = client.post("/staff/gaps/faq", {"knowledge_base": bases["b"].pk, "question": "Planted?",
                                               "answer": "Yes."})
    assert response.status_code == 400 and not FaqEntry.objects.exists()
    assert client.get(f"/staff/conversations/{conversations['b'].public_id}/").status_code == 404
    assert client.get(f"/staff/conversations/{conversations['a'].public_id}/").status_code == 200
    assert client.get("/staff/gaps/", {"kb": bases["b"].pk}).status_code == 400
    # and the dashboard without a chosen base shows one it reaches, its filter offering only those
    page = client.get("/staff/gaps/")
    assert page.status_code == 200 and page.context["filter"].knowledge_base_id in {bases["a"].pk, bases["c"].pk}
    assert {pk for pk, _ in page.context["bases"]} == {bases["a"].pk, bases["c"].pk}


def test_with_no_base_restricted_nothing_is_filtered(client, shop):
    kb, _ = shop
    client.force_login(staff_member("ed", password="pw-ed-12345", roles=(KB_EDITOR,)))
    assert client.get("/staff/gaps/").context["filter"].knowledge_base_id is None
    assert client.get(f"/kb/{kb.slug}/").status_code == 200
