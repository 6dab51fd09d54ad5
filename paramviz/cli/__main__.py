"""``python -m paramviz.cli`` runs the ``paramviz`` command."""

import sys

from paramviz.cli import main

sys.exit(main())
