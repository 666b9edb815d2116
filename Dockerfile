# The inference service and its model in one image: dependencies, then model, then code, so that a
# code-only change rebuilds only the last, small layer. build-image (src/aiship/commands/
# build_image.py) assembles the context (the layout .dockerignore lets through) and passes the
# build args; nothing is downloaded here.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS deps
# Wheels for this platform, fetched on the host and checked against the lock
# (src/aiship/clients/wheelhouse.py).
# Then drop what serving never imports: test suites, and onnxruntime's tools that need `onnx`.
COPY .build/wheelhouse /wheelhouse
RUN python3 -m venv --without-pip /opt/venv \
    && python3 -m pip --python /opt/venv/bin/python install --no-cache-dir --no-index \
        --find-links /wheelhouse --only-binary=:all: --require-hashes \
        --requirement /wheelhouse/requirements.txt \
    && find /opt/venv -depth -type d -name tests -exec rm -rf {} + \
    && rm -rf /opt/venv/lib/python3*/site-packages/onnxruntime/transformers \
        /opt/venv/lib/python3*/site-packages/onnxruntime/quantization \
        /opt/venv/lib/python3*/site-packages/onnxruntime/tools

FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/aiship \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    HOST=0.0.0.0 \
    PORT=8080 \
    MODEL_DIR=/model
COPY --from=deps /opt/venv /opt/venv
COPY .build/model/model.onnx .build/model/model.json /model/
# The service only: .dockerignore lets src/aiship/__init__.py and src/aiship/app/ through.
COPY src/aiship /opt/aiship/aiship
WORKDIR /opt/aiship
# Any uid works; the root filesystem can be read-only, with a tmpfs on /tmp.
USER 10001:10001
EXPOSE 8080
# On SIGTERM, granian (src/aiship/app/server.py) lets requests in flight finish, for up to 20 s,
# then exits 0.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "aiship.app", "probe"]

# Last, because they change with every build and would otherwise void the cache of what follows.
# BASE_IMAGE and BASE_DIGEST: the base as build-image resolved it before the build.
ARG BASE_IMAGE
ARG BASE_DIGEST=unknown
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown
ARG MODEL_NAME=unknown
ARG MODEL_VERSION=unknown
ARG MODEL_SHA256=unknown
LABEL org.opencontainers.image.title="aiship" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      org.opencontainers.image.base.digest="${BASE_DIGEST}" \
      aiship.model.name="${MODEL_NAME}" \
      aiship.model.version="${MODEL_VERSION}" \
      aiship.model.sha256="${MODEL_SHA256}"
ENV APP_REVISION=${REVISION}
CMD ["python", "-m", "aiship.app", "serve"]
