from django.apps import AppConfig


class PortfoliosConfig(AppConfig):
    name = "portfolios"
    verbose_name = "Portfolios"

    def ready(self) -> None:
        from portfolios.stream import register as register_stream_topics

        register_stream_topics()
        from copytrading.matching import register_leader_book
        from portfolios.selectors import PortfolioLeaderBook

        register_leader_book(PortfolioLeaderBook())
