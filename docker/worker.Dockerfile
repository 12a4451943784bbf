# The grading worker's image: the iiotlab image's install plus the cluster extra.
# `iiotlab worker` runs each student's gateway in bubblewrap when the container may create
# namespaces (else the plain sandbox, with a warning): see docs/cluster.md.
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends mosquitto bubblewrap \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/iiotlab
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY iiotlab ./iiotlab
COPY simulators ./simulators
COPY edge_gateway ./edge_gateway
COPY iiot_platform ./iiot_platform
COPY grader ./grader
COPY labs ./labs
RUN pip install --no-cache-dir ".[cluster]" && rm -rf build *.egg-info
# Fail the build when Celery, the Redis client or the built-in labs are missing.
RUN cd / && iiotlab lab list >/dev/null && python -c "import celery, redis"
RUN useradd --create-home --uid 1000 iiotlab
USER iiotlab
ENV IIOTLAB_DATA_DIR=/home/iiotlab/data
ENTRYPOINT ["iiotlab"]
CMD ["worker", "--help"]
