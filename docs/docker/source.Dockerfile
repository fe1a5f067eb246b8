# Multi-stage: build the ruvector-rabitq wheel from this repository's
# sources (for a platform PyPI has no wheel for, or a patched build), then
# install it into a slim image that has no compiler, no Rust and no sources.
#
#   docker build -f docs/docker/source.Dockerfile -t ruvector-rabitq:src .
#   (run from the repository root: the whole workspace is the build context;
#   BuildKit reads source.Dockerfile.dockerignore beside this file, which
#   leaves target/, dist/ and the virtualenvs out of it)
#
# The runtime stage uses the builder's Debian release (bookworm): a wheel
# built without zig needs the builder's glibc or newer.
#
# tests/release/test_docker.py runs the final stage's `pip install` line in
# a fresh virtualenv, with /wheels standing for the wheels of dist/.

# --- stage 1: the wheel --------------------------------------------------
FROM rust:1-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/maturin && /opt/maturin/bin/pip install --no-cache-dir "maturin>=1.16,<2"
WORKDIR /src
COPY . .
RUN /opt/maturin/bin/maturin build --release -m crates/ruvector-py-rabitq/Cargo.toml -o /wheels \
    && /opt/maturin/bin/pip wheel --no-deps --wheel-dir /wheels python/ruvector-common

# --- stage 2: the slim runtime ---------------------------------------------
FROM python:3.12-slim-bookworm
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --find-links /wheels ruvector-rabitq && rm -rf /wheels

RUN useradd --create-home --uid 10001 app
USER app
CMD ["python", "-c", "import ruvector_rabitq as rr; print(rr.__version__, rr.cpu_features())"]
