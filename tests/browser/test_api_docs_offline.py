"""The API docs work offline: in Chromium, with every origin but the server's blocked
(as on a machine without internet), Swagger UI lists the operations, Redoc renders
the reference and GraphiQL opens its editor and runs a query — and none of them even
tries another origin. tests/acceptance/test_offline_pages.py checks the same pages'
references without a browser."""

import pytest

from tests.browser.conftest import browser_marks

pytestmark = browser_marks


@pytest.fixture
def offline(page, server):
    """Requests to any other origin are refused (and remembered); the page's own go through."""
    attempted: list[str] = []

    def only_the_server(route):
        url = route.request.url
        if url.startswith((server.url + "/", "data:", "blob:")):
            route.continue_()
        else:
            attempted.append(url)
            route.abort("internetdisconnected")

    page.context.route("**/*", only_the_server)
    yield page
    assert attempted == [], f"requests to other origins: {attempted}"


def test_swagger_ui_lists_the_operations_offline(offline):
    offline.goto("/api/docs/")
    offline.wait_for_selector(".swagger-ui .opblock")
    assert offline.locator(".swagger-ui .opblock").count() > 50
    assert offline.locator(".swagger-ui .info .title").inner_text().startswith("Copy trading API")


def test_redoc_renders_the_reference_offline(offline):
    offline.goto("/api/redoc/")
    offline.wait_for_selector("redoc h1")
    assert offline.locator("redoc h1").first.inner_text().startswith("Copy trading API")
    assert offline.locator("redoc [data-section-id^='operation/']").count() > 50


def test_graphiql_opens_its_editor_and_runs_a_query_offline(offline):
    # No ?query= in the address: graphene would read it before each request's
    # body, and GraphiQL's own schema request would then fail (a 400).
    offline.goto("/graphql/")
    offline.wait_for_selector(".graphiql-container .graphiql-query-editor .CodeMirror")
    offline.evaluate(
        "() => document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue('{ __typename }')"
    )

    def the_query(r) -> bool:  # not GraphiQL's own schema request, which it may send meanwhile
        return r.request.method == "POST" and "/graphql/" in r.url and "__typename" in (r.request.post_data or "")

    with offline.expect_response(the_query) as answered:
        offline.click(".graphiql-execute-button")
    assert answered.value.status == 200
    offline.wait_for_function(
        "() => document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue().includes('Query')"
    )
