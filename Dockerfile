# tatum-kms: a wheel built in one stage, installed with SoftHSM2 into a slim runtime stage.
#
#   docker build -t tatum-kms .                                   # python:3.11-slim
#   docker build --build-arg BASE=debian:bookworm-slim -t tatum-kms .   # any Debian with python3 + venv
#   docker build --build-arg EXTRAS= -t tatum-kms:lean .          # without the sandbox (see README)
#
# Both stages use the same BASE and call `python3` from PATH. No secret is passed to or kept in the
# image: the password, PIN and API key come from the environment or files at `docker run`.

ARG BASE=python:3.11-slim

# -- build: the tatum-kms wheel and a wheel of every dependency --------------------------------------
FROM ${BASE} AS build
# For a proxy with its own CA: PIP_CERT=/etc/ssl/certs/ca-certificates.crt with the bundle mounted
# there (scripts/docker-image.sh does this); a build argument of this stage only, not in the image.
ARG PIP_CERT
ARG EXTRAS=sandbox
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 DEBIAN_FRONTEND=noninteractive
# A compiler for the dependencies published as source only (safe-pysha3, python-pkcs11 on some
# platforms); Python's headers from apt only when the base has none (a plain Debian base).
RUN set -e; apt-get update -qq; packages="gcc libc6-dev"; \
    python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' \
      || packages="$packages python3-dev"; \
    apt-get install -y -qq --no-install-recommends $packages >/dev/null; rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/build && /opt/build/bin/pip install -q --upgrade pip wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY chains ./chains
COPY hsm ./hsm
COPY kms ./kms
RUN /opt/build/bin/pip wheel -q --wheel-dir /wheels ".${EXTRAS:+[$EXTRAS]}"

# -- runtime: python3, SoftHSM2 and the wheels; no compiler, no test extras, no source tree -----------
FROM ${BASE}
ARG EXTRAS=sandbox
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends softhsm2 ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin kms \
 && install -d -m 0700 -o kms -g kms /home/kms/.tatumrc
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python3 -m venv /opt/tatum-kms \
 && /opt/tatum-kms/bin/pip install -q --no-index --no-cache-dir --disable-pip-version-check \
      --find-links /wheels "tatum-kms${EXTRAS:+[$EXTRAS]}" \
 && /opt/tatum-kms/bin/pip uninstall -q -y pip
ENV PATH=/opt/tatum-kms/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    TATUM_KMS_METRICS=0.0.0.0:9464
USER kms
WORKDIR /home/kms
VOLUME /home/kms/.tatumrc
EXPOSE 9464
# /healthz of the daemon's metrics server (TATUM_KMS_METRICS): 200 while the store is unlocked, the
# token session alive and the last poll recent; any other command in this container has no health.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["python3", "-m", "kms.healthcheck"]
ENTRYPOINT ["tatum-kms"]
CMD ["--help"]
