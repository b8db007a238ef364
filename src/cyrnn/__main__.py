"""python -m cyrnn [demo | forecast] [options]: see cyrnn._cli."""
import sys

from cyrnn._cli import main

if __name__ == "__main__":
    sys.exit(main())
