"""Authentication: expiring, hashed, revocable API tokens and login throttling.

A room of the core: ``models`` (AuthToken, LoginThrottle), ``services`` (every
write), ``authentication`` (the DRF class), ``backends`` (the throttled login
backend used by the API and the admin alike), ``client`` (the client address),
``api`` (register, token, logout, password, me).
"""
