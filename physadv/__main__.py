import sys

from physadv.cli.main import main

sys.exit(main())
