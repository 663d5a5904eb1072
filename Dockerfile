# reviewops Airflow image: the official Airflow image extended with the project's runtime lock,
# as described in https://airflow.apache.org/docs/docker-stack/build.html
# ("Adding packages from requirements.txt").
#
# The code is NOT baked in: docker-compose.yaml bind-mounts dags/, plugins/ and include/.
# Nothing secret is copied either: secrets reach the containers as environment variables from .env
# (see .env.example), and .dockerignore keeps .env out of the build context.
#
# The Airflow version in this tag must equal the apache-airflow== pin in requirements.txt
# (checked by tests/deploy/test_docker_compose.py).
FROM apache/airflow:3.3.2-python3.11

# Named volume mount point for pipeline artifacts. Creating it in the image, owned by the airflow user,
# means a fresh `reviewops-artifacts` volume starts out writable (Docker copies the ownership of the
# image directory into an empty named volume). airflow-init also chowns it for non-default AIRFLOW_UIDs.
USER root
RUN install -d -o airflow -g 0 -m 0775 /opt/airflow/artifacts

# PyPI packages must be installed as the airflow user, never as root (the image refuses root installs).
USER airflow

COPY --chown=airflow:0 requirements.txt /requirements.txt

# requirements.txt is the runtime lock (make lock: uv pip compile requirements.in); the test and lint tools
# are in requirements-dev.txt, which stays out of the image. It pins apache-airflow==3.3.2, the
# version of the base image. Naming "apache-airflow==${AIRFLOW_VERSION}" (set by the base image) as well, as
# the docs recommend, makes the build fail instead of silently up/downgrading Airflow if they ever diverge.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /requirements.txt

# Domain package: include/reviewops; Airflow operators: plugins/reviewops_airflow.
ENV PYTHONPATH=/opt/airflow/include:/opt/airflow/plugins
