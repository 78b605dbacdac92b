"""Django settings, read from environment variables, one module per topic.

Why pydantic-settings rather than django-environ: each variable is declared once, as a
typed field with its default and meaning, so docs/DEPLOY.md's tables are generated from
the declarations (`python -m faceservice.settings.docs --write`) and a test keeps them
equal; a bad value stops the start with ImproperlyConfigured naming the variable (every
bad one of a topic at once). django-environ reads one variable per call, with no
declaration to document: a bad number raises int()'s error without the variable's name,
and an unknown word silently reads as a false flag.

Each topic module (environment.py says how):

    class Search(Variables):            # a field per environment variable, same name
        HNSW_M: int = Field(16, description="graph degree ...")

    export(read(Search), globals())     # each field becomes the Django setting of its name

then builds the Django settings that are not plain variables (DATABASES, REST_FRAMEWORK).

    base.py      the environment (development/production), apps, middleware, logging
    api.py       request sizes, rate limits, REST framework, OpenAPI
    database.py  PostgreSQL and the Redis cache
    celery.py    broker, queues and the one beat schedule with its intervals
    security.py  secrets, hosts, HTTPS, KMS keys, and the production checks
    faces.py     face engine, match thresholds, face store
    search.py    in-memory galleries and pgvector HNSW indexes
    jobs.py      index jobs and outbound fetches
    webhooks.py  webhook deliveries
    audit.py     audit log, the consoles and their sessions
    observability.py  the metrics ports (traces: the standard OTEL_* variables)
    anomalies.py alerts on anomalous access (audit/anomalies) and the console's back-off
    environment.py  the typed reader (parsing rules, naming errors); docs.py  the DEPLOY.md tables

Local defaults are safe for a developer's machine; FACESERVICE_ENV=production turns on
the production checks, which refuse to start with insecure settings.
"""

from faceservice.settings.anomalies import *  # noqa: F403
from faceservice.settings.api import *  # noqa: F403
from faceservice.settings.audit import *  # noqa: F403
from faceservice.settings.base import *  # noqa: F403
from faceservice.settings.base import PRODUCTION
from faceservice.settings.celery import *  # noqa: F403
from faceservice.settings.database import *  # noqa: F403
from faceservice.settings.faces import *  # noqa: F403
from faceservice.settings.jobs import *  # noqa: F403
from faceservice.settings.observability import *  # noqa: F403
from faceservice.settings.search import *  # noqa: F403
from faceservice.settings.security import *  # noqa: F403
from faceservice.settings.security import check_production_settings
from faceservice.settings.webhooks import *  # noqa: F403

# Last, so that every setting above is checked.
if PRODUCTION:
    check_production_settings(globals())
