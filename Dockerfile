# One image for every alertyard service: `alertyard serve tokens|router|audit|console`.
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project --compile-bytecode
COPY shared ./shared
COPY services ./services
RUN uv sync --frozen --no-dev && .venv/bin/python -m compileall -q shared services

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 alertyard
WORKDIR /app
COPY --from=build --chown=alertyard:alertyard /src /app
ENV PATH="/app/.venv/bin:$PATH" PYTHONUNBUFFERED=1 ALERTYARD_LOG_FORMAT=json
USER alertyard
EXPOSE 8081 8082 8083 8085
ENTRYPOINT ["alertyard"]
CMD ["--help"]
