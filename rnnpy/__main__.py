"""python -m rnnpy: the command line (see rnnpy.tools.cli)."""
from .tools.cli import main

raise SystemExit(main())
