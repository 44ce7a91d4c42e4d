# syntax=docker/dockerfile:1
#
# One image for every role; the command picks it:
#   ghibli ingest            the HTTP API on :8000
#   ghibli consume           one consumer process of the group (scale with replicas)
#   ghibli space             the offline Space on :7861 (the Space's API on a CPU stylizer)
#   ghibli metrics-exporter  the queue's gauges for Prometheus on :9102
#   ghibli doctor            check the deployment and say what to fix
#
# The offline Space's extra (gradio server, numpy, OpenCV) is in the image by default, so the one
# image runs every role, the compose file's `offline` profile included. A deployment that only ever
# calls the Hugging Face Space can leave it out: `docker build --build-arg GHIBLI_EXTRAS= .`
# (`ghibli space` then stops with an import error; every other role works).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# --- build: resolve the locked environment into /opt/ghibli ------------------------------------
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/opt/ghibli
ARG GHIBLI_EXTRAS=space
WORKDIR /src
# Dependencies first, in their own layer: editing the code does not reinstall them.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    uv sync --locked --no-dev --no-install-project ${GHIBLI_EXTRAS:+--extra "$GHIBLI_EXTRAS"}
COPY . .
# --no-editable installs the project itself as a wheel, so the final stage needs no source tree.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable ${GHIBLI_EXTRAS:+--extra "$GHIBLI_EXTRAS"}

# --- runtime: the environment, tini and an unprivileged user; no uv, no compilers ---------------
FROM ${PYTHON_IMAGE} AS runtime
# tini as PID 1 forwards SIGTERM to the command and reaps zombies; a Python PID 1 would ignore
# signals it installs no handler for.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 ghibli \
    && useradd --system --uid 10001 --gid ghibli --home-dir /home/ghibli --create-home \
        --shell /usr/sbin/nologin ghibli \
    && install -d -o ghibli -g ghibli /data
COPY --from=build /opt/ghibli /opt/ghibli
# Inside a container every server listens on all of the container's addresses; what the host
# exposes is decided by published ports. Telemetry of Gradio and the Hub stays off.
ENV PATH=/opt/ghibli/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GHIBLI_HOST=0.0.0.0 \
    GHIBLI_SPACE_HOST=0.0.0.0 \
    GHIBLI_METRICS_HOST=0.0.0.0 \
    GHIBLI_LOG_FORMAT=json \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_DISABLE_TELEMETRY=1 \
    HF_HOME=/home/ghibli/.cache/huggingface
USER ghibli
WORKDIR /home/ghibli
EXPOSE 8000 7861 9101 9102
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["ghibli", "ingest"]
# Finds the role from the command: ingest answers /healthz, the offline Space /config, and a
# consumer has a fresh liveness key in Redis (it is working the queue, not just running).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["ghibli", "doctor", "--probe", "container", "--timeout", "5"]
