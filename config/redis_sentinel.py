"""Redis behind Sentinel, from one URL (docs/scaling.md "Redis"; README "Configuration").

``REDIS_URL=redis+sentinel://[[user]:password@]host1:26379,host2:26379,host3:26379/<master>[/<db>]``
names the Sentinel nodes and the monitored master; the three Redis clients of the
process follow the master through a failover, each the way its library supports it:

- the Celery broker: kombu's ``sentinel://`` transport (one URL per node joined by ``;``,
  ``master_name`` as a transport option);
- the cache: Django's RedisCache with ``pool_class`` = ``SentinelPool`` below (Django has
  no Sentinel option; its client builds each pool with ``pool_class.from_url``);
- the channel layer: channels-redis hosts entries ``{"sentinels": [...], "master_name": ...}``.

A ``redis://`` or ``rediss://`` URL is a single server, as before. The password (and user)
is the master's; Sentinel nodes are reached without one.
"""

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from redis.sentinel import Sentinel, SentinelConnectionPool

SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def parse(url: str) -> SentinelTarget | None:
    """The Sentinel nodes and master of a ``redis+sentinel://`` URL; None for any other URL.
    A malformed one raises ValueError with what is wrong."""
    if not url.startswith(SCHEME + "://"):
        return None
    rest = url[len(SCHEME) + 3 :]
    credentials, _, location = rest.rpartition("@")
    netloc, _, path = location.partition("/")
    sentinels = []
    for node in (n.strip() for n in netloc.split(",")):
        if not node:
            continue
        parsed = urlsplit(f"//{node}")
        try:
            port = parsed.port or DEFAULT_SENTINEL_PORT
        except ValueError:
            raise ValueError(f"REDIS_URL: bad Sentinel node {node!r} (host:port)") from None
        if not parsed.hostname:
            raise ValueError(f"REDIS_URL: bad Sentinel node {node!r} (host:port)")
        sentinels.append((parsed.hostname, port))
    if not sentinels:
        raise ValueError("REDIS_URL: no Sentinel nodes (redis+sentinel://host1:26379,host2:26379/master/0)")
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise ValueError("REDIS_URL: the path is /<master name>[/<db>] (redis+sentinel://host:26379/mymaster/0)")
    if len(parts) == 2 and not parts[1].isdigit():
        raise ValueError(f"REDIS_URL: the database {parts[1]!r} is not a number")
    username = password = None
    if credentials:
        user, has_password, secret = credentials.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    return SentinelTarget(
        sentinels=tuple(sentinels),
        master=unquote(parts[0]),
        db=int(parts[1]) if len(parts) == 2 else 0,
        username=username,
        password=password,
    )


def broker_url(target: SentinelTarget) -> str:
    """kombu's form: ``sentinel://[user:password@]host:port/db`` per node, joined by ``;``."""
    auth = ""
    if target.password is not None:
        auth = f"{quote(target.username or '', safe='')}:{quote(target.password, safe='')}@"
    return ";".join(f"sentinel://{auth}{host}:{port}/{target.db}" for host, port in target.sentinels)


def channel_layer_host(target: SentinelTarget, **options) -> dict:
    """One channels-redis ``hosts`` entry (its ``create_pool`` reads ``master_name``/``sentinels``)."""
    host: dict = {
        "sentinels": [list(node) for node in target.sentinels],
        "master_name": target.master,
        "db": target.db,
        "sentinel_kwargs": {k: v for k, v in options.items() if k.startswith("socket_")},
        **options,
    }
    if target.password is not None:
        host["password"] = target.password
    if target.username:
        host["username"] = target.username
    return host


class SentinelPool(SentinelConnectionPool):
    """Django's RedisCache ``pool_class``: Django calls ``from_url(LOCATION, **OPTIONS)``."""

    @classmethod
    def from_url(cls, url: str, **options) -> "SentinelPool":
        target = parse(url)
        if target is None:
            raise ValueError(f"SentinelPool needs a {SCHEME}:// URL")
        sentinel_kwargs = {k: v for k, v in options.items() if k.startswith("socket_")}
        manager = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs)
        credentials = {"password": target.password, "username": target.username}
        return cls(target.master, manager, db=target.db, **{k: v for k, v in credentials.items() if v}, **options)
