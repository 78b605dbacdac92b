"""Static files served by the web process: WhiteNoise, quiet about a folder not collected."""

from __future__ import annotations

import os

from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise's middleware, minus its warning at every start in a checkout.

    The image collects static files into STATIC_ROOT; a checkout has no such folder
    and serves them from the apps instead (settings: WHITENOISE_USE_FINDERS), so
    WhiteNoise's "No directory at" warning would only be noise in ./dev run and the tests.
    """

    def add_files(self, root, prefix=None) -> None:
        if self.autorefresh or os.path.isdir(root):
            super().add_files(root, prefix)
