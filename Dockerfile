# syntax=docker/dockerfile:1
#
# leaver container image.
#
#   docker build -t leaver:0.1.0 \
#     --build-arg VERSION=0.1.0 \
#     --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
#     --build-arg SOURCE=https://git.example.com/leaver .
#
# Runtime dependencies come from requirements.lock (hashes checked, wheels only); regenerate it with
#   uv pip compile pyproject.toml --generate-hashes -o requirements.lock --python-version 3.11
# The image runs as uid 10001, writes only under /tmp (LEAVER_DATA_DIR=/tmp/leaver) and works with a
# read-only root filesystem: mount a tmpfs/emptyDir on /tmp.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/leaver/bin:$PATH

WORKDIR /src

# Dependencies first, so that a code change does not reinstall them.
COPY requirements.lock ./
RUN python -m venv /opt/leaver \
    && pip install --no-cache-dir --require-hashes --only-binary=:all: -r requirements.lock

# Then the application itself (its dependencies are already in place: --no-deps).
COPY pyproject.toml ./
COPY app ./app
RUN pip install --no-cache-dir --no-deps . \
    && leaver --help > /dev/null

# ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=""

LABEL org.opencontainers.image.title="leaver" \
      org.opencontainers.image.description="Removes a terminated user's remaining access in the IGA, durably and exactly once." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/${PYTHON_IMAGE}"

RUN groupadd --system --gid 10001 leaver \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin leaver

# The virtual environment holds leaver and every dependency, byte-compiled at install time.
COPY --from=builder /opt/leaver /opt/leaver

ENV PATH=/opt/leaver/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LEAVER_DATA_DIR=/tmp/leaver \
    LEAVER_LOG_FORMAT=json

WORKDIR /opt/leaver
USER 10001:10001
EXPOSE 8000

# No curl in the slim image: Python's urllib fails on anything but a 2xx. Set HEALTHCHECK_URL for a
# container that listens elsewhere (compose disables this check for `leaver worker`).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('HEALTHCHECK_URL', 'http://127.0.0.1:8000/healthz'), timeout=4)"]

ENTRYPOINT ["leaver"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
