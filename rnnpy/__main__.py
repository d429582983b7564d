"""python -m rnnpy: the command line (see rnnpy.cli)."""
from .cli import main

raise SystemExit(main())
