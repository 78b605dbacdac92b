import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceservice.settings")
application = get_wsgi_application()

# Each web process loads the models once, before it takes requests.
from embeddings.face_engine import warm_up_face_engine  # noqa: E402

warm_up_face_engine()

# What is loaded so far (Django, the models, their sessions) lives as long as
# the process: move it out of the collector's sight, so that the full
# collections a request sometimes triggers do not walk it (a p99 cost).
import gc  # noqa: E402

gc.freeze()
