# Image for `promptrecorder demo`, used by the `demo` service of docker-compose.yml.
#   docker build -t promptrecorder .
#   docker run --rm promptrecorder promptrecorder demo --endpoint http://HOST:4318 --protocol http/protobuf
# The OTLP exporter is configured by the CLI flags or the standard OTEL_* variables.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# The whole repository (minus what .dockerignore leaves out); `pip install .`
# builds the wheel with hatchling, fetched from PyPI in an isolated build env.
COPY . .
# wait-for-http: lets docker-compose.yml start the demo only once the collector's
# health_check endpoint answers (the collector image cannot be probed from inside).
COPY config/wait-for-http.py /usr/local/bin/wait-for-http
RUN pip install . \
    && chmod 0755 /usr/local/bin/wait-for-http \
    && useradd --system --uid 10001 --no-create-home promptrecorder

# Run as an unprivileged user, from a directory that is not the source tree.
USER promptrecorder
WORKDIR /tmp
CMD ["promptrecorder", "demo"]
