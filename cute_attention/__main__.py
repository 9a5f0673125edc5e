"""``python -m cute_attention catalog --target sm_80``: the main job (see :mod:`cute_attention.tools.cli`)."""

import sys

from cute_attention.tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
