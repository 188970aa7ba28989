# The app image for docker-compose.yml: the orchestrator, the labelling app (Voila) and, in the
# `cluster` profile, the Dask scheduler and workers all run it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# torch first, from the CPU index: the default wheel pulls gigabytes of CUDA libraries that a
# labelling server never uses. Its own layer, so code changes do not re-download it.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md ./
COPY widgetal ./widgetal
RUN pip install ".[postgres,transformers,app,cluster]"
COPY orchestrator.py ./

# A non-root user. /app/models is the compose file's bind mount; /cache keeps downloaded
# transformer weights in a named volume (which inherits this ownership and mode on first use),
# writable by any uid, since the orchestrator runs as WIDGETAL_UID from .env.
RUN useradd --create-home --uid 1000 widgetal \
    && mkdir -p /app/models /cache \
    && chown widgetal:widgetal /app/models /cache \
    && chmod 1777 /cache
USER widgetal
ENV WIDGETAL_MODELS_DIR=/app/models \
    HF_HOME=/cache/huggingface

CMD ["widgetal", "--help"]
