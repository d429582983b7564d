"""``python -m rnnpy.distributed_bench``: the data-parallel benchmark (rnnpy.tools.distributed_bench)."""
import sys

from .tools.distributed_bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
