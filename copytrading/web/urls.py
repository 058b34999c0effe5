"""The client pages of the core: the session, the wallet, notifications."""

from django.urls import path
from django.views.generic import TemplateView

from copytrading.web import auth_views, notification_views, wallet_views

urlpatterns = [
    path("login/", auth_views.login_view, name="web-login"),
    path("register/", auth_views.register_view, name="web-register"),
    path("logout/", auth_views.logout_view, name="web-logout"),
    path("me/wallet/", wallet_views.wallet_view, name="web-wallet"),
    *notification_views.urlpatterns,
    # Where the API, its documentation and the back office are (templates/landing.html).
    path("developers/", TemplateView.as_view(template_name="landing.html"), name="developers"),
]
