FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app

WORKDIR /app

# Requirements first, so a code change does not reinstall every wheel.
COPY requirements.txt .
RUN pip install -r requirements.txt

# The code stays owned by root: the app user can read it but never rewrite it.
COPY . .

# The manifest storage that PRODUCTION selects hashes file names at build time. Settings refuse
# to load under PRODUCTION without secrets, so this one command gets throw-away values that are
# never used to sign or encrypt anything and do not stay in the image's environment.
RUN PRODUCTION=true \
    SECRET_KEY=collectstatic-only-never-used-at-runtime \
    FIELD_ENCRYPTION_KEY=collectstatic-only-never-used-at-runtime \
    python manage.py collectstatic --noinput

# A fresh named volume copies the owner of the directory it is mounted on, so creating it here
# is what lets the non-root web and worker processes write uploads into it.
RUN install -d -o app -g app -m 0750 /data/media

ENV PRODUCTION=true \
    MEDIA_ROOT=/data/media \
    WEB_CONCURRENCY=3

USER app

EXPOSE 8000

# The request names the first host in ALLOWED_HOSTS, or Django answers 400. It also says it came
# over HTTPS (gunicorn believes that header from loopback), so SECURE_SSL_REDIRECT cannot turn the
# check into a redirect to a port that speaks no TLS.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; host = (os.environ.get('ALLOWED_HOSTS') or 'localhost').split(',')[0].strip().lstrip('.').replace('*', 'localhost'); r.urlopen(r.Request('http://127.0.0.1:8000/healthz', headers={'Host': host, 'X-Forwarded-Proto': 'https'}), timeout=5)"]

# Threads (gthread) keep a worker answering while a multi-gigabyte upload streams in, and the
# timeout then only catches a worker that stopped responding. No --max-requests: a recycled
# worker would cut off an upload still in flight. WEB_CONCURRENCY sets the number of processes.
# The heartbeat file goes to /dev/shm because an overlay filesystem can stall it.
CMD ["gunicorn", "console.wsgi:application", \
     "--bind", "0.0.0.0:8000", \
     "--worker-class", "gthread", \
     "--threads", "4", \
     "--timeout", "60", \
     "--graceful-timeout", "30", \
     "--keep-alive", "5", \
     "--worker-tmp-dir", "/dev/shm", \
     "--access-logfile", "-"]
