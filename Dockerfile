# syntax=docker/dockerfile:1
# The esep worker image: `esep worker` by default; any other esep command as arguments,
# e.g. `docker run --rm esep:0.1.0 config`.
#
# Base image pinned to an exact tag. For a reproducible build also pin its digest, after
# reading it yourself: `docker buildx imagetools inspect python:3.11.14-slim-bookworm`, then
# write `FROM python:3.11.14-slim-bookworm@sha256:<digest>` on both FROM lines.

# Stage 1: install the project (no dev or test extras) into a virtualenv. Every dependency
# ships a manylinux wheel for CPython 3.11, so no compiler is needed.
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/esep
WORKDIR /src
# The engine's packages only: the tools (tools/: local broker, demo, bench, simulate) are not
# part of the worker's image. tests/test_layout.py checks this list against pyproject.toml.
COPY pyproject.toml README.md ./
COPY streams streams
COPY models models
COPY tables tables
COPY monitoring monitoring
COPY rules rules
RUN /opt/esep/bin/pip install . \
 && /opt/esep/bin/esep --help >/dev/null

# The simulator (`docker compose --profile simulator`): the engine plus the tools and their extra.
FROM build AS tools-build
COPY tools tools
RUN /opt/esep/bin/pip install '.[tools]' \
 && /opt/esep/bin/esep simulate --help >/dev/null

FROM python:3.11.14-slim-bookworm AS simulator
RUN groupadd --system --gid 10001 esep \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/esep --no-create-home \
      --shell /usr/sbin/nologin esep \
 && mkdir -p /var/lib/esep && chown 10001:10001 /var/lib/esep
COPY --from=tools-build /opt/esep /opt/esep
ENV PATH=/opt/esep/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 ESEP_DATA_DIR=/var/lib/esep
WORKDIR /var/lib/esep
USER 10001:10001
ENTRYPOINT ["esep"]
CMD ["simulate"]

# The worker's runtime (the default, last stage), without the source tree and pip's build leftovers.
FROM python:3.11.14-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 esep \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/esep --no-create-home \
      --shell /usr/sbin/nologin esep \
 && mkdir -p /var/lib/esep \
 && chown 10001:10001 /var/lib/esep \
 && chmod 0750 /var/lib/esep
COPY --from=build /opt/esep /opt/esep
# ESEP_WEB_BIND=0.0.0.0 so that a published port (-p 127.0.0.1:6066:6066) reaches the worker's
# web server. Inside a container, "all interfaces" means the container's own network; what the
# host exposes is decided by the port mapping.
ENV PATH=/opt/esep/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ESEP_DATA_DIR=/var/lib/esep \
    ESEP_WEB_PORT=6066 \
    ESEP_WEB_BIND=0.0.0.0
WORKDIR /var/lib/esep
USER 10001:10001
# Worker state (registry replica, decisions store, faust datadir) under ESEP_DATA_DIR/workers/<id>.
VOLUME ["/var/lib/esep"]
EXPOSE 6066
# slim has no curl: probe the faust web server with the standard library.
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/' % os.environ.get('ESEP_WEB_PORT', '6066'), timeout=4).close()"]
ENTRYPOINT ["esep"]
CMD ["worker"]
