# syntax=docker/dockerfile:1
# Three stages. `train` installs the train extra and builds a default artifact from synthetic data;
# `trainer` is that image serving `python -m training serve` (outcomes, retraining, promotion); the
# final stage, `runtime`, installs only the base package (no scikit-learn), copies the artifacts and
# serves. The installs go through scripts/install.sh, the script CI runs (nox -s runtime_only).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS train
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY runtime runtime
COPY training training
COPY scripts/install.sh scripts/install.sh
RUN bash scripts/install.sh train
RUN python -m training synth --rows 5000 --seed 42 --out /tmp/synthetic.json \
 && python -m training fit --data /tmp/synthetic.json --model all --artifacts /artifacts \
 && python -m training list --artifacts /artifacts

FROM train AS trainer
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MODELS_DIR=/srv/artifacts \
    ML_TRAINER_HOST=0.0.0.0 \
    ML_TRAINER_PORT=8001
RUN useradd --system --uid 10001 --no-create-home mlmatching \
 && mkdir -p /srv && cp -r /artifacts /srv/artifacts && chown -R mlmatching /srv/artifacts
USER mlmatching
WORKDIR /srv
EXPOSE 8001
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('ML_TRAINER_PORT', '8001'), timeout=2)"]
CMD ["python", "-m", "training", "serve"]

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MODELS_DIR=/srv/artifacts \
    ML_SERVICE_HOST=0.0.0.0 \
    ML_SERVICE_PORT=8000
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY runtime runtime
COPY training training
COPY scripts/install.sh scripts/install.sh
RUN bash scripts/install.sh runtime && rm -rf /src
RUN useradd --system --uid 10001 --no-create-home mlmatching
COPY --from=train --chown=mlmatching /artifacts /srv/artifacts
USER mlmatching
WORKDIR /srv
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('ML_SERVICE_PORT', '8000'), timeout=2)"]
CMD ["python", "-m", "runtime"]
