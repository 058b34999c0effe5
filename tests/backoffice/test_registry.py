"""Every model of every project app is in the back office, and the public
entry points (health, OpenAPI schema and docs) answer."""

import pytest
from django.apps import apps
from django.contrib import admin

PROJECT_APPS = ["copytrading", "portfolios", "followers", "risk", "fees", "backoffice"]


def test_every_model_of_every_project_app_is_in_the_admin():
    expected = {m for label in PROJECT_APPS for m in apps.get_app_config(label).get_models()}
    missing = sorted(m.__name__ for m in expected - set(admin.site._registry))
    assert missing == []


@pytest.mark.django_db
def test_every_admin_changelist_opens_for_staff(admin_client):
    from django.urls import reverse

    for model in admin.site._registry:
        if model._meta.app_label not in PROJECT_APPS:
            continue
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert admin_client.get(url).status_code == 200, url


@pytest.mark.django_db
def test_health_schema_and_docs_answer(client):
    health = client.get("/healthz")
    assert health.status_code == 200
    # No worker or beat has run in this test: reported, not critical.
    assert health.json()["db"] == "ok"
    assert health.json()["status"] == "degraded"
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"openapi" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()
