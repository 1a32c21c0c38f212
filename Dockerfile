# The gateway on a slim Python base, as a non-root user.
#   docker build -t llm-gateway .
#   docker run -p 8080:8080 -v $PWD/config:/app/config:ro llm-gateway
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip install . && useradd --system --uid 10001 --home /app gateway

# The shipped config, baked in; mount your own at /app/config to replace it.
COPY config ./config
# The dashboard and alert rules, which the prompt runbooks name (GET /admin/prompts/NAME/runbook).
COPY deploy/grafana/dashboards ./deploy/grafana/dashboards
COPY deploy/prometheus/alerts.yml ./deploy/prometheus/alerts.yml
USER gateway
EXPOSE 8080
ENTRYPOINT ["gateway", "serve"]
# The shipped config binds 127.0.0.1; in a container listen on every interface.
CMD ["--config", "config/gateway.toml", "--host", "0.0.0.0"]
