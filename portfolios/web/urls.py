from portfolios.web import dashboard, leader_money, leaderboard, portfolio_page

urlpatterns = [*leaderboard.urlpatterns, *portfolio_page.urlpatterns, *dashboard.urlpatterns, *leader_money.urlpatterns]
