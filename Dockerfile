# One image for every process (web, workers, beat, the migrate job): see docker-compose.yml.
# The runtime lock only (requirements/runtime.txt, hash-checked), installed by uv into /venv
# in a build stage; the final image runs as an unprivileged user and serves its own static
# files (WhiteNoise), collected at build time.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 UV_NO_CACHE=1 UV_PYTHON_DOWNLOADS=never
RUN pip install uv==0.13.9
COPY requirements/runtime.txt /tmp/runtime.txt
RUN python -m venv --without-pip /venv \
    && uv pip install --python /venv/bin/python --require-hashes -r /tmp/runtime.txt

FROM python:3.11-slim
# PYTHONPATH: the code is not installed as a package; every entry point (daphne, celery,
# manage.py) imports it from /app whatever its working directory.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/venv/bin:$PATH PYTHONPATH=/app VAR_DIR=/app/var
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /venv /venv
WORKDIR /app
COPY manage.py ./
COPY templates ./templates
COPY config ./config
COPY copytrading ./copytrading
COPY portfolios ./portfolios
COPY followers ./followers
COPY risk ./risk
COPY fees ./fees
COPY backoffice ./backoffice
# Static files collected as services mode serves them (gzip variants beside each file);
# the throwaway key and database URL only select that mode: nothing is signed or connected.
# var/ (e-mail files, the filesystem broker's folders) belongs to the user the processes run as.
RUN DJANGO_SECRET_KEY=build-only DATABASE_URL=postgres://build@localhost/build \
        python manage.py collectstatic --noinput \
    && chown -R app:app /app/var

# Numeric, so the runtime (and Kubernetes runAsNonRoot) can tell it is not root.
USER 10001:10001
EXPOSE 8000
# The web process's health (200 unless the database or the broker is unreachable); the
# worker and beat services override it in docker-compose.yml.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "config.asgi:application"]
