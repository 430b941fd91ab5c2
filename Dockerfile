# syntax=docker/dockerfile:1
# The service's image: gunicorn with gevent workers (config/gunicorn.py), settings only from the environment.
# Build: docker build -t chatstore:0.1.0 .    Deploy: deploy/ and docs/operations.md.

# -- build: the dependencies, from setup.cfg, into a virtualenv the final stage copies whole -------------------
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The metadata only, so that a change to the code keeps this layer: without its packages the project installs
# as its dependencies and an empty distribution, uninstalled again (the code runs from its source tree in /app,
# where the migrations and alembic.ini are found beside it). Every dependency has a wheel for this platform, so
# no compiler is needed; pip and setuptools leave the virtualenv too, as nothing installs at run time.
COPY setup.cfg pyproject.toml README.md ./
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install . \
    && /opt/venv/bin/pip uninstall --yes chatstore setuptools pip

# -- run ------------------------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm

# No shell, no home, no password: the service never logs in. A fixed id, so Kubernetes can check runAsNonRoot.
RUN groupadd --system --gid 10001 chatstore \
    && useradd --system --uid 10001 --gid chatstore --no-create-home --shell /usr/sbin/nologin chatstore

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Owned by root and read-only to the service; var/ (the SQLite database of a trial run) is the service's.
COPY wsgi.py alembic.ini ./
COPY app ./app
COPY models ./models
COPY config ./config
COPY migrations ./migrations
RUN mkdir var && chown chatstore:chatstore var

# BIND: every interface, on the port EXPOSE names. XDG_RUNTIME_DIR: where gunicorn puts its control socket
# (else $HOME, which this user has not); /tmp is writable, an emptyDir under Kubernetes' read-only root.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BIND=0.0.0.0:8080 \
    XDG_RUNTIME_DIR=/tmp

USER 10001:10001
EXPOSE 8080
# Liveness only (the worker answers HTTP); readiness, which checks the databases, is the orchestrator's /readyz.
# Python, not curl: the slim image has no curl, and adding it would add a package to patch.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
CMD ["gunicorn", "-c", "config/gunicorn.py"]
