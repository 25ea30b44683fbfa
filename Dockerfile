# The agentctl image the reconcile CronJob runs (deploy/<env>/reconciler.yaml, docs/running.md).
#
#   docker build -t registry.example.com/agentctl:0.1.0 .
#   agentctl init --cronjob prod --image registry.example.com/agentctl:0.1.0 --repo URL --force
#
# Two stages: a wheel built from this checkout, then a slim runtime with only that wheel and
# its dependencies, running as an unprivileged user with nothing writable but /tmp (the
# CronJob mounts an emptyDir there and sets a read-only root filesystem). The repository to
# reconcile is not in the image: git-sync clones it into /repo at the start of every run.
ARG PYTHON_IMAGE=docker.io/library/python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agentctl ./agentctl
COPY blueprints ./blueprints
RUN python -m pip install --no-cache-dir --upgrade pip build \
 && python -m build --wheel --outdir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    NO_COLOR=1
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl \
 && rm -rf /wheels \
 && useradd --uid 65532 --user-group --no-create-home --home-dir /tmp agentctl
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["agentctl"]
CMD ["--help"]
