"""The same Definitions with Dagster's Celery executor: steps run on Celery workers (any number of
machines sharing the broker, the instance's Postgres storage and the data paths).

    export VID_ASSETS_CELERY_BROKER=redis://host:6379/0 VID_ASSETS_CELERY_BACKEND=redis://host:6379/1
    dagster-celery worker start -y celery.yaml -n gpu-worker-1        # on each worker machine
    dagster asset materialize -m vid_assets.definitions_celery --select '*' --partition KEY

Needs ``pip install 'vid_assets[scale]'`` (dagster-celery, dagster-postgres, redis, psycopg).
"""

from dagster_celery import celery_executor

from vid_assets import settings
from vid_assets.defs.build import build_definitions

broker, backend = settings.celery_urls()
executor = celery_executor.configured({"broker": broker, "backend": backend})

defs = build_definitions(executor=executor)
