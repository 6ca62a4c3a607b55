import sys

from ortsparse.cli import main

sys.exit(main())
