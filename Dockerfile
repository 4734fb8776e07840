# Stages:
#   build    uv installs the locked versions (uv.lock) into two virtual environments: /opt/runtime
#            (the base package: no scikit-learn) and /opt/train (with the train and postgres
#            extras). Build tools, uv and every cache stay in this stage.
#   train    /opt/train, and a default artifact trained from synthetic data (the image's demo store)
#   trainer  the train stage serving `ml-matching trainer` (outcomes, retraining, promotion)
#   runtime  the base image, /opt/runtime and the demo store: `ml-matching serve` (the last stage,
#            so the default target)
# The installs go through scripts/install.sh, the script CI runs (nox -s runtime_only).
#
# Built with BuildKit, `--target runtime` builds build, train and runtime (the demo store is trained
# in train), never trainer; the legacy builder (DOCKER_BUILDKIT=0) builds every stage before the
# target. No `# syntax=` line: the Dockerfile frontend built into the engine reads this file, and
# an engine that cannot reach Docker Hub can still build it.
#
# Size (docs/guides/containers.md): no bytecode is compiled for the whole environment (half of it
# would never be imported: Faker's locales, numpy's tests...). Each service writes the bytecode of
# what it imports once, at build time, by doing its work: the demo fit compiles training, a request
# to each service compiles serving. The images run as another user on a read-only environment, so
# anything else is compiled in memory when first imported. Test folders of the installed packages
# are removed.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
RUN python -m pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /src
COPY pyproject.toml uv.lock README.md hatch_build.py ./
COPY schemas schemas
COPY src src
COPY scripts/install.sh scripts/install.sh
# Copies, not links, into /opt; no cache; the base image's Python, never a downloaded one.
ENV UV_COMPILE_BYTECODE=0 UV_LINK_MODE=copy UV_NO_CACHE=1 UV_PYTHON_DOWNLOADS=never
RUN UV_PROJECT_ENVIRONMENT=/opt/runtime bash scripts/install.sh runtime \
 && UV_PROJECT_ENVIRONMENT=/opt/train bash scripts/install.sh train \
 && find /opt/runtime /opt/train -depth -type d -path '*/site-packages/*' -name tests -exec rm -rf {} + \
 && find /opt/runtime /opt/train -depth -type d -name __pycache__ -exec rm -rf {} +

FROM ${PYTHON_IMAGE} AS train
COPY --from=build /opt/train /opt/train
# The service user has no home: matplotlib's cache goes to /tmp, and onnxruntime's telemetry (which
# would persist a device id in ~/.cache, and warn at every start that it cannot) is off.
ENV PATH=/opt/train/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    ORT_DISABLE_TELEMETRY=1
# The demo store; this run writes the bytecode of what training imports.
RUN unset PYTHONDONTWRITEBYTECODE \
 && ml-matching synth --rows 5000 --seed 42 --out /tmp/synthetic.json \
 && ml-matching fit --data /tmp/synthetic.json --artifacts /artifacts \
 && ml-matching list --artifacts /artifacts \
 && python -m compileall -q /opt/train/lib/python3*/site-packages/ml_matching \
 && rm -rf /tmp/* /tmp/.[!.]*

FROM train AS trainer
ENV MODELS_DIR=/srv/artifacts \
    ML_TRAINER_HOST=0.0.0.0 \
    ML_TRAINER_PORT=8001
# The trainer answers once on an empty store of its own (writing the bytecode of what it imports).
RUN unset PYTHONDONTWRITEBYTECODE && cd /tmp && MODELS_DIR=/tmp/store python -c "\
import uvicorn.main, uvicorn.loops.uvloop, uvicorn.protocols.http.httptools_impl, uvicorn.lifespan.on; \
from litestar.testing import TestClient; \
from ml_matching.trainer.app import create_app; \
client = TestClient(create_app()); client.__enter__(); \
codes = [client.get(path).status_code for path in ('/health', '/schema/openapi.json')]; \
client.__exit__(None, None, None); \
assert codes == [200, 200], codes" \
 && rm -rf /tmp/* /tmp/.[!.]*
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
# The runtime serves the seed's example from the demo store once (a build whose runtime cannot
# answer fails here), which writes the bytecode of what serving imports.
RUN unset PYTHONDONTWRITEBYTECODE && cd /tmp && python -c "\
import json, importlib.resources as resources; \
import uvicorn.main, uvicorn.loops.uvloop, uvicorn.protocols.http.httptools_impl, uvicorn.lifespan.on; \
from litestar.testing import TestClient; \
from ml_matching.runtime.app import create_app; \
seed = json.loads((resources.files('ml_matching.contract') / '_schemas/examples/predict.request.json').read_text()); \
client = TestClient(create_app()); client.__enter__(); \
codes = [client.post('/predict', json=seed).status_code, \
         client.post('/predict/batch', json={'instances': [seed, seed]}).status_code] \
      + [client.get(path).status_code for path in ('/health/ready', '/docs', '/schema/openapi.json', '/metrics')]; \
client.__exit__(None, None, None); \
assert codes == [200] * 6, codes" \
 && python -m compileall -q /opt/runtime/lib/python3*/site-packages/ml_matching \
 && rm -rf /tmp/* /tmp/.[!.]*
USER mlmatching
WORKDIR /srv
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('ML_SERVICE_PORT', '8000'), timeout=2)"]
CMD ["ml-matching", "serve"]
