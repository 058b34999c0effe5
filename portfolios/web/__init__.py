"""The client pages of portfolios: the leaderboard at ``/``
(``leaderboard``), a portfolio's page (``portfolio_page``) and the leader's
dashboard (``dashboard``). Each module holds its views and its
``urlpatterns``; see copytrading/web for what the pages share."""
