# The streamproc worker image (used by docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streamproc ./streamproc
RUN pip install --no-cache-dir .
COPY schemas ./schemas
COPY topics ./topics
RUN useradd --create-home streamproc && mkdir -p /app/.streamproc && chown streamproc /app/.streamproc
USER streamproc
ENV STREAMPROC_WEB_HOST=0.0.0.0
EXPOSE 6066
ENTRYPOINT ["streamproc"]
CMD ["worker"]
