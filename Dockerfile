# syntax=docker/dockerfile:1
# Stages:
#   build    uv installs the locked versions (uv.lock) into two virtual environments: /opt/runtime
#            (the base package: no scikit-learn) and /opt/train (with the train extra). Build tools,
#            uv and every cache stay in this stage.
#   train    /opt/train, and a default artifact trained from synthetic data (the image's demo store)
#   trainer  the train stage serving `ml-matching trainer` (outcomes, retraining, promotion)
#   runtime  the base image, /opt/runtime and the artifacts: `ml-matching serve` (the default target)
# The installs go through scripts/install.sh, the script CI runs (nox -s runtime_only).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
RUN python -m pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY schemas schemas
COPY src src
COPY scripts/install.sh scripts/install.sh
# Bytecode compiled now (the images run read-only as another user); copies, not links, into /opt.
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_NO_CACHE=1 UV_PYTHON_DOWNLOADS=never
RUN UV_PROJECT_ENVIRONMENT=/opt/runtime bash scripts/install.sh runtime \
 && UV_PROJECT_ENVIRONMENT=/opt/train bash scripts/install.sh train

FROM ${PYTHON_IMAGE} AS train
COPY --from=build /opt/train /opt/train
# The service user has no home: matplotlib's cache goes to /tmp, and onnxruntime's telemetry (which
# would persist a device id in ~/.cache, and warn at every start that it cannot) is off.
ENV PATH=/opt/train/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    ORT_DISABLE_TELEMETRY=1
RUN ml-matching synth --rows 5000 --seed 42 --out /tmp/synthetic.json \
 && ml-matching fit --data /tmp/synthetic.json --artifacts /artifacts \
 && ml-matching list --artifacts /artifacts \
 && rm /tmp/synthetic.json

FROM train AS trainer
ENV MODELS_DIR=/srv/artifacts \
    ML_TRAINER_HOST=0.0.0.0 \
    ML_TRAINER_PORT=8001
# /srv/store: an empty store a volume may be mounted on (it takes the folder's owner).
RUN useradd --system --uid 10001 --no-create-home mlmatching \
 && mkdir -p /srv/store && cp -r /artifacts /srv/artifacts && chown -R mlmatching /srv/artifacts /srv/store
USER mlmatching
WORKDIR /srv
EXPOSE 8001
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('ML_TRAINER_PORT', '8001'), timeout=2)"]
CMD ["ml-matching", "trainer"]

FROM ${PYTHON_IMAGE} AS runtime
COPY --from=build /opt/runtime /opt/runtime
ENV PATH=/opt/runtime/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ORT_DISABLE_TELEMETRY=1 \
    MODELS_DIR=/srv/artifacts \
    ML_SERVICE_HOST=0.0.0.0 \
    ML_SERVICE_PORT=8000
RUN useradd --system --uid 10001 --no-create-home mlmatching \
 && mkdir -p /srv/store && chown mlmatching /srv/store
COPY --from=train --chown=mlmatching /artifacts /srv/artifacts
USER mlmatching
WORKDIR /srv
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('ML_SERVICE_PORT', '8000'), timeout=2)"]
CMD ["ml-matching", "serve"]
