# A slim image with only the RaBitQ indexes (ruvector-rabitq, its one shared
# dependency ruvector-common, and NumPy): no compiler, no build step, since
# the manylinux2014 wheel from PyPI fits python:*-slim (Debian, glibc).
#
#   docker build -f docs/docker/rabitq.Dockerfile -t ruvector-rabitq .
#   docker run --rm ruvector-rabitq
#
# tests/release/test_docker.py runs this file's `pip install` line in a fresh
# virtualenv from the wheels of dist/ and holds the installed size to budget.
FROM python:3.12-slim

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

RUN pip install --no-cache-dir "ruvector-rabitq>=0.1,<1"

# Runs as an unprivileged user; the index files of the app go to /data.
RUN useradd --create-home --uid 10001 app && mkdir /data && chown app /data
USER app
WORKDIR /data

CMD ["python", "-c", "import numpy as np, ruvector_rabitq as rr; x = np.random.default_rng(0).standard_normal((1000, 64), dtype=np.float32); print(rr.IvfRabitqIndex.build(x, seed=42).search(x[7], k=3))"]
