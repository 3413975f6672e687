# syntax=docker/dockerfile:1
# sgbridge in a container: `docker build -t sgbridge .` then
#   docker run -d --name sgbridge -p 8080:8080 -p 8081:8081 -v sgbridge-data:/var/lib/sgbridge \
#     --env-file sgbridge.env sgbridge
# Build with PostgreSQL support: --build-arg SGBRIDGE_EXTRAS="[postgres]".
# See docs/deployment.md. (Not built by the test suite: the development machine runs no container engine.)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: the wheel, and wheels of every dependency, so the runtime stage installs offline ----
FROM ${PYTHON_IMAGE} AS build
ARG SGBRIDGE_EXTRAS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Only what the wheel is made of (.dockerignore keeps the rest of the checkout out of the context).
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip wheel --wheel-dir /wheels ".${SGBRIDGE_EXTRAS}"

# ---- runtime: the installed wheel, a non-root user, state on a volume ----
FROM ${PYTHON_IMAGE} AS runtime
ARG SGBRIDGE_EXTRAS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 sgbridge \
 && useradd --system --uid 10001 --gid sgbridge --home-dir /var/lib/sgbridge --create-home \
        --shell /usr/sbin/nologin sgbridge \
 && chmod 0750 /var/lib/sgbridge
# The wheels are bind-mounted from the build stage, so they leave no layer behind.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels "sgbridge${SGBRIDGE_EXTRAS}"

# The SQLite journal, the DuckDB warehouse (sgbridge.duckdb) and dlt's folder (sgbridge-dlt) all
# live beside the journal, in the volume. A config file, if any: mount it and set SGBRIDGE_CONFIG.
ENV SGBRIDGE_DATABASE_URL=sqlite:////var/lib/sgbridge/journal.db \
    SGBRIDGE_PORT=8080
VOLUME ["/var/lib/sgbridge"]
WORKDIR /var/lib/sgbridge
USER sgbridge:sgbridge
# 8080: the webhooks and the Tracking API (ingest); 8081: the console at /ui (the web role)
EXPOSE 8080 8081
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('SGBRIDGE_PORT', '8080'); sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status != 200)"]
# SIGTERM: uvicorn stops accepting, the bridge finishes what it holds and closes the journal.
STOPSIGNAL SIGTERM
CMD ["sgbridge", "serve", "--host", "0.0.0.0"]
