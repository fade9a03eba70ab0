"""The addresses DESIGN.md and the README promise answer where they say."""

import pytest


@pytest.mark.django_db
def test_home_links_every_surface(client):
    # when the home page is opened / then it links the widget demo, kb pages, dashboard, admin and schema
    body = client.get("/").content.decode()
    for address in ("/chat/demo/", "/kb/", "/staff/", "/admin/", "/api/v1/schema", "/readyz"):
        assert f'href="{address}"' in body


@pytest.mark.django_db
def test_api_schema_is_served_at_the_design_address(client):
    # when / then the OpenAPI schema is JSON at /api/v1/schema, same as under the chat prefix
    response = client.get("/api/v1/schema")
    assert response.status_code == 200
    assert response.json() == client.get("/api/v1/chat/schema").json()
    assert response.json()["openapi"].startswith("3.")
