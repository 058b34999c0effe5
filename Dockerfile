FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY pyproject.toml ./
COPY config ./config
COPY copytrading ./copytrading
COPY portfolios ./portfolios
COPY followers ./followers
COPY risk ./risk
COPY fees ./fees
COPY backoffice ./backoffice
COPY templates ./templates
COPY manage.py ./
# collectstatic signs nothing: a throwaway key keeps a generated one out of the image
RUN pip install --no-cache-dir . && DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput

EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "config.asgi:application"]
