"""The session's real runner documents, produced in the background (tests/real_documents.py).

`python -m tests.produce_real_documents DIR [--collectives]`: runs the tiny plan (and the collectives
plan) on this CPU into DIR, as tests/real_documents.py's own processes would, under the same locks. The
first test process that collects tests using these documents starts it (tests/conftest.py), so the
plan runs while the test processes run the tests that need no documents.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    root = Path(argv[0])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "certification.settings")
    import django
    import torch

    django.setup()
    # One torch thread, as each xdist worker (tests/conftest.py): the test processes use the other cores.
    torch.set_num_threads(1)
    from tests.real_documents import produce_collectives, produce_documents

    produce_documents(root)
    if "--collectives" in argv[1:]:
        produce_collectives(root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
