"""The platform's settings plus one bench-only URL: the bare DRF list of bench/public_reads.py."""

from certification.settings import *  # noqa: F403 - every setting, one added

ROOT_URLCONF = "public_reads_urls"
