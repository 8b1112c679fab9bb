import sys

from physadv.cli.main import main

if __name__ == "__main__":  # importing this module (as documentation tools do) must not run the command
    sys.exit(main())
