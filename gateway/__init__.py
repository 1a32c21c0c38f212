"""An async LLM gateway: OpenAI-compatible proxy with prompt versions, canary routing,
failover across providers and Prometheus metrics."""

__version__ = "0.1.0"
