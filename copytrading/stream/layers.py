"""The channel layers the stream may use in services mode, fitted to our Redis
timeouts. Every Redis client here has a socket timeout (REDIS_TIMEOUT_SECONDS,
1 s): the core layer's blocking pop must wait less than that, or every idle
second of a hub's receive would end in a timeout error."""

from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer


class BoundedRedisChannelLayer(RedisChannelLayer):
    brpop_timeout = 0.5


class BoundedRedisPubSubChannelLayer(RedisPubSubChannelLayer):
    """Its receive already polls every 0.1 s."""
