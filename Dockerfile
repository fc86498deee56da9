# The gateway image for the scaled deployment (docker-compose.yml, docs/deploy.md).
# One image for every service: `gateway web`, `gateway mqtt`, `gateway telegram`,
# `gateway worker ...`; the command picks the part.

# --- build: the runtime dependencies into a virtualenv (compilers stay here) -------
FROM python:3.12-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY gateway ./gateway
COPY protocols ./protocols
COPY project ./project
# The package and its runtime dependencies only: no test or bench extras.
RUN /opt/venv/bin/pip install .

# --- runtime -----------------------------------------------------------------------
FROM python:3.12-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app \
    DJANGO_SETTINGS_MODULE=project.settings \
    GATEWAY_DATA_DIR=/app/var
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --home-dir /app --no-create-home gateway
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY manage.py ./
COPY gateway ./gateway
COPY protocols ./protocols
COPY project ./project
COPY deploy ./deploy
# Static files collected at build time (the admin's and the dashboard's), into
# GATEWAY_DATA_DIR/static; the key only exists for this one command.
RUN SECRET_KEY=collectstatic-at-build-time python -m django collectstatic --noinput \
    && chown -R gateway:gateway /app/var
USER gateway
EXPOSE 8000 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["gateway", "check", "--port", "8000"]
ENTRYPOINT ["gateway"]
CMD ["web", "--host", "0.0.0.0", "--port", "8000"]
