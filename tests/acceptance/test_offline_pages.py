"""The landing page and the API docs (Swagger UI, Redoc, GraphiQL) load nothing from
another origin: every script, stylesheet and icon they name is one of our static
files, and the app serves each one (WhiteNoise) — from the apps' folders as the
test settings and embedded mode do, and from what collectstatic gathered with the
storage services mode uses (the container image). tests/browser/test_api_docs_offline.py
renders them in Chromium with every other origin blocked."""

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import resolve

# The pages, each asked for as a browser does (GraphiQL answers JSON unless HTML is accepted).
PAGES = ["/", "/api/docs/", "/api/redoc/", "/graphql/", "/admin/login/"]
HTML = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
# An absolute or protocol-relative URL anywhere in a page: an origin other than ours
# (an inline SVG's xmlns is a name, not a load: taken out first).
OTHER_ORIGIN = re.compile(r"""(?:https?:)?//[a-z0-9][a-z0-9.-]*\.[a-z]{2,}""", re.IGNORECASE)
XML_NAMESPACE = re.compile(r"""\sxmlns(?::\w+)?=["'][^"']*["']""")
ASSET_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml"}


class _References(HTMLParser):
    """Every URL the page makes the browser load or link to (src and href)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return parser.urls


def page_html(client: Client, path: str) -> str:
    response = client.get(path, **HTML)
    assert response.status_code == 200, (path, response.status_code)
    assert response["Content-Type"].startswith("text/html"), path
    return response.content.decode()


def assets(client: Client) -> set[str]:
    """The static files the pages name."""
    found = set()
    for path in PAGES:
        found |= {url for url in references(page_html(client, path)) if url.startswith("/static/")}
    return found


def assert_served(client: Client, urls: set[str]) -> None:
    for url in sorted(urls):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        body = b"".join(response.streaming_content)
        assert body, url
        suffix = url[url.rfind(".") :]
        assert ASSET_TYPES[suffix] in response["Content-Type"], (url, response["Content-Type"])


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAGES)
def test_page_names_no_other_origin(client, path):
    html = page_html(client, path)
    assert OTHER_ORIGIN.findall(XML_NAMESPACE.sub("", html)) == []
    # every reference is site-absolute or a fragment of the page itself
    for url in references(html):
        assert url.startswith(("/", "#")) and not url.startswith("//"), (path, url)


@pytest.mark.django_db
def test_docs_pages_load_their_own_assets(client):
    urls = assets(client)
    # Swagger UI and Redoc from drf-spectacular-sidecar, GraphiQL's bundles from
    # graphene-django-graphiql-static, graphene-django's own starter script, the admin's CSS.
    assert any(u.startswith("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle") for u in urls)
    assert any(u.startswith("/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone") for u in urls)
    assert any(u.startswith("/static/graphene_django_graphiql_static/graphiql.min") for u in urls)
    assert "/static/graphene_django/graphiql.js" in urls
    assert any(u.startswith("/static/admin/css/") for u in urls)
    assert_served(client, urls)


@pytest.mark.slow  # collectstatic with gzip variants: seconds of CPU, once, in the services pass
@pytest.mark.django_db
def test_collected_static_files_serve_every_asset(settings, tmp_path):
    """Services mode and the image: collectstatic with the storage they use, then
    WhiteNoise serves the pages' assets from STATIC_ROOT alone (no app folders)."""
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    }
    settings.WHITENOISE_USE_FINDERS = False
    call_command("collectstatic", interactive=False, verbosity=0)
    client = Client()  # a new handler: WhiteNoise reads STATIC_ROOT when it is built
    urls = assets(client)
    assert_served(client, urls)
    gzipped = client.get(sorted(u for u in urls if u.endswith(".js"))[0], HTTP_ACCEPT_ENCODING="gzip")
    assert gzipped["Content-Encoding"] == "gzip"


@pytest.mark.django_db
def test_landing_page_links_everything(client):
    html = page_html(client, "/developers/")
    links = [url for url in references(html) if not url.startswith("/static/")]
    paths = {urlsplit(url).path for url in links}
    assert {"/api/v1/catalog", "/api/docs/", "/api/redoc/", "/api/schema/", "/graphql/", "/admin/", "/healthz"} <= paths
    for url in links:
        resolve(urlsplit(url).path)  # a route, not a typo
        answer = client.get(url, **HTML)
        # anonymous: the admin sends to its login, token-only endpoints refuse, a POST-only one says so
        assert answer.status_code in (200, 302, 401, 403, 405), (url, answer.status_code)


@pytest.mark.django_db
def test_landing_page_greets_a_signed_in_user(admin_client, admin_user):
    html = page_html(admin_client, "/developers/")
    assert f"Signed in as <strong>{admin_user.get_username()}</strong>" in html
