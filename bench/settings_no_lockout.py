"""The platform's settings with the login lockout off: the "before" side of bench/login_flood.py only."""

from certification.settings import *  # noqa: F403 - every setting, one changed

AXES_ENABLED = False
