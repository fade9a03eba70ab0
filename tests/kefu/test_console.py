"""The one staff console (issue 17: 7): /staff/ and /kb/ share one layout, one navigation and one sign-in."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User

from kb.models import KnowledgeBase
from kefu.roles import ANALYST, KB_EDITOR, SUPPORT_AGENT
from tests.conftest import staff_member

NAV_LINKS = {
    "/staff/": "Dashboard", "/staff/questions/": "Top questions", "/staff/gaps/": "Knowledge gaps",
    "/staff/feedback/": "Down-rated", "/staff/inbox/": "Hand-off inbox", "/kb/": "Knowledge bases",
}


def header(response) -> str:
    return re.search(r'<header class="top">(.*?)</header>', response.content.decode(), re.S).group(1)


def nav_links(response) -> set[str]:
    return {href.split("?")[0] for href in re.findall(r'<a href="([^"]+)"', header(response))} & set(NAV_LINKS)


@pytest.fixture
def shop(db):
    return KnowledgeBase.objects.create(name="Shop", slug="shop")


@pytest.mark.parametrize("url", ["/staff/", "/staff/inbox/", "/kb/", "/kb/shop/", "/kb/shop/faq/", "/kb/shop/search"])
def test_staff_and_kb_pages_share_one_header(client, shop, url):
    # given someone holding every role / when any console page opens
    client.force_login(staff_member("all", password="pw-all-12345"))
    response = client.get(url)
    # then it has the one console header: brand, every page of the navigation, sign-out and the language switcher
    assert response.status_code == 200
    top = header(response)
    assert 'class="brand"' in top and 'id="language-switch"' in top and "/staff/logout/" in top
    assert nav_links(response) == set(NAV_LINKS)
    assert '<body class="console">' in response.content.decode()


def test_the_navigation_marks_the_current_page(client, shop):
    client.force_login(staff_member("all", password="pw-all-12345"))
    assert 'href="/kb/" aria-current="page"' in header(client.get("/kb/shop/faq/"))
    assert re.search(r'href="/staff/gaps/(\?[^"]*)?" aria-current="page"', header(client.get("/staff/gaps/")))
    assert header(client.get("/staff/gaps/")).count("aria-current") == 1


@pytest.mark.parametrize(("roles", "links"), [
    ((ANALYST,), set(NAV_LINKS)),
    ((KB_EDITOR,), set(NAV_LINKS)),
    ((SUPPORT_AGENT,), {"/staff/inbox/"}),
])
def test_the_navigation_shows_only_what_the_roles_open(client, shop, roles, links):
    client.force_login(staff_member("member", password="pw-member-123", roles=roles))
    page = "/staff/inbox/" if roles == (SUPPORT_AGENT,) else "/kb/"
    assert nav_links(client.get(page)) == links


def test_kb_and_staff_pages_send_anonymous_visitors_to_the_same_sign_in(client, shop):
    for url in ("/staff/", "/kb/", "/kb/shop/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/staff/login/?next="), url


def test_the_admin_sign_in_address_sends_to_the_one_sign_in_keeping_next(client, db):
    # given a bookmark of the admin's sign-in / then it leads to the staff sign-in, which returns to the admin
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302 and response["Location"] == "/staff/login/?next=/admin/"
    final, _ = client.get("/admin/", follow=True).redirect_chain[-1]
    assert final in ("/staff/login/?next=/admin/", "/staff/login/?next=%2Fadmin%2F")
    # and Django staff signing in there land in the admin
    User.objects.create_superuser("root", "root@example.com", "pw-root-12345")
    signed_in = client.post("/staff/login/?next=/admin/", {"username": "root", "password": "pw-root-12345",
                                                           "next": "/admin/"})
    assert signed_in["Location"] == "/admin/" and client.get("/admin/").status_code == 200


@pytest.mark.parametrize(("roles", "landing"), [
    ((ANALYST,), "/staff/"), ((SUPPORT_AGENT,), "/staff/inbox/"), (None, "/staff/"),
])
def test_signing_in_without_next_opens_the_first_page_the_roles_allow(client, db, roles, landing):
    staff_member("pat", password="pw-pat-12345", roles=roles)
    response = client.post("/staff/login/", {"username": "pat", "password": "pw-pat-12345"})
    assert response.status_code == 302 and response["Location"] == landing
    assert client.get(landing).status_code == 200


def test_the_sign_in_page_has_the_public_header_and_no_console_navigation(client, db):
    response = client.get("/staff/login/?next=/kb/")
    assert response.status_code == 200 and nav_links(response) == set()
    assert 'name="next" value="/kb/"' in response.content.decode()
