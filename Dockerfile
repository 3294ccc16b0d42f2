# One image for every process of a deployment: the Dagster webserver and daemon, the two
# code location servers and the webhook receiver (see docs/deployment.md). Dependencies come
# from uv.lock, the dbt manifest is built here, and no secret is ever copied in: settings
# come from the environment at run time.
#
#   docker build -t gtm-orchestration:$(git rev-parse --short HEAD) .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The uv release the Makefile pins, from PyPI.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11
WORKDIR /app
# The dependencies first: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
# The project itself, editable: the code locations find dagster.yaml, the configuration and
# the dbt project beside the package, as in a checkout.
RUN uv sync --frozen --no-dev
# The manifest the warehouse code location loads (`make install` does the same).
WORKDIR /app/dbt_project
RUN ../.venv/bin/dbt parse --quiet --project-dir . --profiles-dir . && rm -rf logs .user.yml

FROM ${PYTHON_IMAGE}
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    GTM_DATA_DIR=/var/lib/gtm
RUN useradd --uid 10001 --user-group --home-dir /home/gtm --create-home gtm
COPY --from=build /app /app
WORKDIR /app
# The instance: the repository's dagster.yaml (pools, run queue, run launcher, monitoring)
# with its runs, events and schedules in PostgreSQL at DAGSTER_PG_URL.
RUN mkdir -p "$DAGSTER_HOME/storage" "$GTM_DATA_DIR" \
    && cat dagster.yaml deploy/dagster-postgres.yaml > "$DAGSTER_HOME/dagster.yaml" \
    # What the processes write: compute logs, the landing zone, dbt's run artifacts.
    && chown -R gtm:gtm "$DAGSTER_HOME/storage" "$GTM_DATA_DIR" /app/dbt_project
# By number, so that a cluster's runAsNonRoot can check it.
USER 10001:10001
# Each process names its own command (deploy/compose.yaml, deploy/helm/values.yaml).
CMD ["gtm", "--help"]
