from tests.exchange_double.fixtures import exchange_double, exchange_settings  # noqa: F401
