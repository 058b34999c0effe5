from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from backoffice.admin_views import portfolio_overview
from backoffice.reports.admin_export import export_view as report_export_view
from backoffice.views import healthz
from config.schema import TokenGraphQLView
from copytrading import api as core_api
from copytrading.auth import api as auth_api
from copytrading.exchanges import api as exchanges_api
from copytrading.notifications import api as notifications_api
from copytrading.observability.views import metrics_view
from fees import api as fees_api
from fees.admin_earnings import earnings_view
from followers import api as followers_api
from followers import fees_api as followers_fees_api
from followers import simulate_api as followers_simulate_api
from followers import stats_api as followers_stats_api
from portfolios import api as portfolios_api
from portfolios import catalog_api, events_api, lifecycle_api, template_api, webhook_api
from portfolios import fees_api as portfolios_fees_api

api_v1 = [
    path("auth/register", auth_api.RegisterView.as_view(), name="auth-register"),
    path("auth/token", auth_api.TokenView.as_view(), name="auth-token"),
    path("auth/logout", auth_api.LogoutView.as_view(), name="auth-logout"),
    path("auth/logout-all", auth_api.LogoutAllView.as_view(), name="auth-logout-all"),
    path("auth/password", auth_api.PasswordView.as_view(), name="auth-password"),
    path("me", auth_api.MeView.as_view(), name="me"),
    path("notifications", notifications_api.NotificationListView.as_view(), name="notification-list"),
    path(
        "notifications/unread-count",
        notifications_api.NotificationUnreadCountView.as_view(),
        name="notification-unread-count",
    ),
    path("notifications/read-all", notifications_api.NotificationReadAllView.as_view(), name="notification-read-all"),
    path(
        "notifications/preferences",
        notifications_api.NotificationPreferencesView.as_view(),
        name="notification-preferences",
    ),
    path("notifications/<int:pk>/read", notifications_api.NotificationReadView.as_view(), name="notification-read"),
    path("exchange-accounts", exchanges_api.ExchangeAccountListView.as_view(), name="exchange-account-list"),
    path(
        "exchange-accounts/<int:pk>", exchanges_api.ExchangeAccountDetailView.as_view(), name="exchange-account-detail"
    ),
    path(
        "exchange-accounts/<int:pk>/validate",
        exchanges_api.ExchangeAccountValidateView.as_view(),
        name="exchange-account-validate",
    ),
    path("wallets/main", core_api.MainWalletView.as_view(), name="wallet-main"),
    path("wallets/main/deposit", core_api.DepositView.as_view(), name="wallet-deposit"),
    path("market/instruments", core_api.InstrumentListView.as_view(), name="market-instruments"),
    path("market/prices", core_api.PriceView.as_view(), name="market-prices"),
    path("portfolios", portfolios_api.PortfolioListView.as_view(), name="portfolio-list"),
    path("portfolios/<int:pk>", portfolios_api.PortfolioDetailView.as_view(), name="portfolio-detail"),
    path("portfolios/<int:pk>/fund", portfolios_api.PortfolioFundView.as_view(), name="portfolio-fund"),
    path(
        "portfolios/<int:pk>/simulate",
        followers_simulate_api.PortfolioSimulateView.as_view(),
        name="portfolio-simulate",
    ),
    path(
        "portfolios/<int:pk>/exchange-account",
        portfolios_api.PortfolioExchangeAccountView.as_view(),
        name="portfolio-exchange-account",
    ),
    path("portfolios/<int:pk>/close", lifecycle_api.PortfolioCloseView.as_view(), name="portfolio-close"),
    path("portfolios/<int:pk>/orders", portfolios_api.PortfolioOrderView.as_view(), name="portfolio-orders"),
    path(
        "portfolios/<int:pk>/orders/<int:order_pk>",
        portfolios_api.PortfolioOrderDetailView.as_view(),
        name="portfolio-order-detail",
    ),
    path(
        "portfolios/<int:pk>/orders/<int:order_pk>/cancel",
        portfolios_api.PortfolioOrderCancelView.as_view(),
        name="portfolio-order-cancel",
    ),
    path(
        "portfolios/<int:pk>/positions/tpsl",
        portfolios_api.PortfolioPositionTpslBatchView.as_view(),
        name="portfolio-positions-tpsl",
    ),
    path(
        "portfolios/<int:pk>/positions/<int:position_pk>",
        portfolios_api.PortfolioPositionDetailView.as_view(),
        name="portfolio-position-detail",
    ),
    path(
        "portfolios/<int:pk>/positions/<int:position_pk>/tpsl",
        portfolios_api.PortfolioPositionTpslView.as_view(),
        name="portfolio-position-tpsl",
    ),
    path(
        "portfolios/<int:pk>/positions", portfolios_api.PortfolioPositionListView.as_view(), name="portfolio-positions"
    ),
    path(
        "portfolios/<int:pk>/positions/<int:position_pk>/close",
        portfolios_api.PortfolioPositionCloseView.as_view(),
        name="portfolio-position-close",
    ),
    path("portfolios/<int:pk>/holdings", portfolios_api.PortfolioHoldingListView.as_view(), name="portfolio-holdings"),
    path("portfolios/<int:pk>/events", events_api.PortfolioEventListView.as_view(), name="portfolio-events"),
    path(
        "portfolios/<int:pk>/webhook-secret", webhook_api.WebhookSecretView.as_view(), name="portfolio-webhook-secret"
    ),
    path("webhooks/signals/<int:portfolio_id>", webhook_api.SignalWebhookView.as_view(), name="webhook-signals"),
    path(
        "portfolios/<int:pk>/earnings", portfolios_fees_api.PortfolioEarningsView.as_view(), name="portfolio-earnings"
    ),
    path(
        "portfolios/<int:pk>/fee-model", portfolios_fees_api.PortfolioFeeModelView.as_view(), name="portfolio-fee-model"
    ),
    path(
        "portfolios/<int:pk>/withdrawals",
        portfolios_fees_api.PortfolioWithdrawalListView.as_view(),
        name="portfolio-withdrawals",
    ),
    path(
        "portfolios/<int:pk>/withdrawals.csv",
        portfolios_fees_api.PortfolioWithdrawalCsvView.as_view(),
        name="portfolio-withdrawals-csv",
    ),
    path("fees/caps", fees_api.MyCapsView.as_view(), name="fees-caps"),
    path("fees/earnings", portfolios_fees_api.LeaderEarningsView.as_view(), name="fees-earnings"),
    path("subscriptions/<int:pk>/fees", followers_fees_api.SubscriptionFeesView.as_view(), name="subscription-fees"),
    path("catalog", catalog_api.CatalogListView.as_view(), name="catalog"),
    path("catalog/<int:pk>", catalog_api.CatalogDetailView.as_view(), name="catalog-detail"),
    path("catalog/<int:pk>/scores", catalog_api.CatalogScoreHistoryView.as_view(), name="catalog-scores"),
    path("catalog/<int:pk>/closed-trades", catalog_api.CatalogClosedTradesView.as_view(), name="catalog-closed"),
    path("favorites", catalog_api.FavoriteListView.as_view(), name="favorite-list"),
    path("favorites/<int:pk>", catalog_api.FavoriteDetailView.as_view(), name="favorite-detail"),
    path("portfolios/<int:pk>/stats", catalog_api.PortfolioStatsView.as_view(), name="portfolio-stats"),
    path(
        "portfolios/<int:pk>/closed-trades",
        catalog_api.PortfolioClosedTradesView.as_view(),
        name="portfolio-closed-trades",
    ),
    path("subscriptions/stats", followers_stats_api.FollowerStatsView.as_view(), name="subscription-stats"),
    path("subscriptions", followers_api.SubscriptionListView.as_view(), name="subscription-list"),
    path("subscriptions/summary", followers_api.SubscriptionSummaryView.as_view(), name="subscription-summary"),
    path("templates", template_api.DefaultTemplateListView.as_view(), name="templates"),
    path("portfolios/<int:pk>/templates", template_api.PortfolioTemplateListView.as_view(), name="portfolio-templates"),
    path(
        "portfolios/<int:pk>/templates/<int:template_pk>",
        template_api.PortfolioTemplateDetailView.as_view(),
        name="portfolio-template-detail",
    ),
    path(
        "subscriptions/<int:pk>/settings",
        followers_api.SubscriptionSettingsView.as_view(),
        name="subscription-settings",
    ),
    path("subscriptions/<int:pk>/top-up", followers_api.SubscriptionTopUpView.as_view(), name="subscription-top-up"),
    path(
        "subscriptions/<int:pk>/withdraw",
        followers_api.SubscriptionWithdrawView.as_view(),
        name="subscription-withdraw",
    ),
    path("subscriptions/<int:pk>/pause", followers_api.SubscriptionPauseView.as_view(), name="subscription-pause"),
    path("subscriptions/<int:pk>/resume", followers_api.SubscriptionResumeView.as_view(), name="subscription-resume"),
    path(
        "subscriptions/<int:pk>/unfollow",
        followers_api.SubscriptionUnfollowView.as_view(),
        name="subscription-unfollow",
    ),
    path("subscriptions/<int:pk>", followers_api.SubscriptionDetailView.as_view(), name="subscription-detail"),
    path(
        "subscriptions/<int:pk>/positions",
        followers_api.SubscriptionPositionListView.as_view(),
        name="subscription-positions",
    ),
    path(
        "subscriptions/<int:pk>/positions/<int:position_pk>/close",
        followers_api.SubscriptionPositionCloseView.as_view(),
        name="subscription-position-close",
    ),
    path(
        "subscriptions/<int:pk>/holdings",
        followers_api.SubscriptionHoldingListView.as_view(),
        name="subscription-holdings",
    ),
    path(
        "subscriptions/<int:pk>/orders", followers_api.SubscriptionOrderListView.as_view(), name="subscription-orders"
    ),
    path(
        "subscriptions/<int:pk>/executions",
        followers_api.SubscriptionExecutionListView.as_view(),
        name="subscription-executions",
    ),
]

urlpatterns = [
    # The client pages (copytrading/web, portfolios/web, followers/web): the leaderboard at /.
    path("", include("portfolios.web.urls")),
    path("", include("followers.web.urls")),
    path("", include("copytrading.web.urls")),
    # Back-office pages outside a model admin (before the admin's catch-all).
    path("admin/fees/earnings/", admin.site.admin_view(earnings_view), name="admin-fees-earnings"),
    path("admin/reports/<slug:kind>.csv", admin.site.admin_view(report_export_view), name="admin-report-export"),
    # Back office pages beside the model admins (before admin.site.urls, whose
    # object URLs would take them).
    path(
        "admin/portfolios/portfolio/<int:portfolio_id>/overview/",
        admin.site.admin_view(portfolio_overview),
        name="backoffice-portfolio-overview",
    ),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path(
        "api/redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"), name="api-redoc"
    ),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("graphql/", TokenGraphQLView.as_view(graphiql=True), name="graphql"),
]

# Errors under /api/ are JSON like every other API error (config/error_views.py).
handler400 = "config.error_views.bad_request"
handler403 = "config.error_views.permission_denied"
handler404 = "config.error_views.page_not_found"
handler500 = "config.error_views.server_error"
