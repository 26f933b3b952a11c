# MedLite app image. Point it at a model server with MEDLITE_BACKEND_URL (TGI, vLLM, ...), or mount a
# model folder and set MEDLITE_MODEL for the embedded engine.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    MEDLITE_DATA_DIR=/data

WORKDIR /app
COPY requirements.txt .
# The CPU build of torch keeps the image small; a GPU host serves the model through TGI instead.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install -r requirements.txt

COPY app.py ./
COPY backend ./backend
COPY storage ./storage
COPY templates ./templates
COPY ui ./ui

RUN useradd --create-home --uid 1000 medlite && mkdir -p /data && chown medlite /data
USER medlite
VOLUME /data
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:%s/config' % os.environ['GRADIO_SERVER_PORT'], timeout=4)"
CMD ["python", "app.py"]
