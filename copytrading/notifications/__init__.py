"""The notifications room: typed kinds (kinds.py), one ``notify`` for every
app (services.py), in-app reading (api.py), e-mail after the commit
(tasks.py) and the listener seam the live stream subscribes to."""
