# The gateway as a non-root (numeric) user, installed from requirements.lock.
#   docker build -t llm-gateway .
#   docker run -p 8080:8080 llm-gateway --config config/gateway.toml --host 0.0.0.0
# BASE is any image with Python 3.11+ and its venv module at `python3`. With a
# `wheelhouse/` folder in the context (make wheelhouse) nothing is downloaded:
#   docker build --network none --build-arg BASE=gateway-base:bookworm -t llm-gateway .
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The lock (and the wheels of a wheelhouse, if there is one) before the source, so that
# this layer stays cached until the lock changes. Pins and hashes only: nothing unlocked.
COPY requirements.lock wheelhouse* ./
RUN set -eu; \
    offline=""; if ls ./*.whl >/dev/null 2>&1; then offline="--no-index --find-links ."; fi; \
    python3 -m venv /opt/gateway; \
    /opt/gateway/bin/pip install $offline --require-hashes --no-deps -r requirements.lock
# The gateway itself, without dependencies (the lock has them all).
COPY . .
RUN set -eu; \
    offline=""; if [ -d wheelhouse ]; then offline="--no-index --find-links wheelhouse"; fi; \
    /opt/gateway/bin/pip install $offline --no-deps . && /opt/gateway/bin/pip check

FROM ${BASE}
ENV PATH=/opt/gateway/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp
COPY --from=build /opt/gateway /opt/gateway
WORKDIR /app
# The shipped config, baked in (mount your own and pass --config); the dashboard and
# alert rules, which the prompt runbooks name (GET /admin/prompts/NAME/runbook).
COPY config ./config
COPY deploy/grafana/dashboards ./deploy/grafana/dashboards
COPY deploy/prometheus/alerts.yml ./deploy/prometheus/alerts.yml
# Numeric, so that Kubernetes' runAsNonRoot can check it; no passwd entry is needed.
USER 10001:10001
EXPOSE 8080
# GATEWAY_HEALTH_PORT: set it when --port is not 8080.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GATEWAY_HEALTH_PORT', '8080'), timeout=2)"]
ENTRYPOINT ["gateway", "serve"]
# The shipped config binds 127.0.0.1; in a container listen on every interface.
CMD ["--config", "config/gateway.toml", "--host", "0.0.0.0"]
