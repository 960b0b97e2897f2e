# Serving image: the live allocator loop (`dea serve`) with the `serve` extra only -- numpy,
# onnxruntime, pyarrow (replay of the canonical store), prometheus-client, websockets; no torch,
# pandas, MLflow or ccxt. Build: docker build -t dea-serve .
# Run (paper exchange, replaying a store mounted beside the config):
#   docker run --rm -v $PWD/configs:/app/configs -v $PWD/dea_store:/app/dea_store -v $PWD/runs:/app/runs \
#     -p 9108:9108 dea-serve serve --config configs/demo.yaml --model runs/<run>/policy.onnx \
#     --feed replay --exchange paper --metrics-port 9108 --metrics-host 0.0.0.0
# Real venues need the ccxt extra: build with --build-arg EXTRAS=serve,ccxt. Port 9108 is the
# Prometheus endpoint; --metrics-host 0.0.0.0 (or serving.metrics_host) lets a scraper outside
# the container reach it (the default, 127.0.0.1, is the container's own loopback).
# Expected size: ~0.5 GB (python:3.11-slim ~0.13 GB + the serve extra ~0.35 GB; see README).

FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY dea ./dea
COPY serving ./serving
RUN pip wheel --no-cache-dir --no-deps -w /wheels .

FROM python:3.11-slim
ARG EXTRAS=serve
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY .ci/constraints.txt /tmp/constraints.txt
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir -c /tmp/constraints.txt "$(ls /wheels/dea_allocation-*.whl)[${EXTRAS}]" \
 && rm -rf /wheels /tmp/constraints.txt \
 && python -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)" \
 && useradd --uid 10001 --create-home dea
WORKDIR /app
COPY configs ./configs
RUN chown -R dea:dea /app
USER dea
EXPOSE 9108
ENTRYPOINT ["dea"]
CMD ["serve", "--help"]
