FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY execution_stream ./execution_stream
RUN pip install --no-cache-dir .
ENV EXECUTION_STREAM_API_HOST=0.0.0.0
USER nobody
ENTRYPOINT ["execution-stream"]
CMD ["worker"]
