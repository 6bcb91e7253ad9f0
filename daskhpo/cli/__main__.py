"""``python -m daskhpo.cli``: the ``daskhpo`` command."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
