import sys

from syncd.service.cli import main

sys.exit(main())
