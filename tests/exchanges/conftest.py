from tests.exchange_double.fixtures import (  # noqa: F401
    exchange_double,
    exchange_settings,
    exchange_stream,
    exchange_stream_settings,
)
