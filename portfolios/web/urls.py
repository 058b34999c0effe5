from portfolios.web import dashboard, leaderboard, portfolio_page

urlpatterns = [*leaderboard.urlpatterns, *portfolio_page.urlpatterns, *dashboard.urlpatterns]
