import sys

from dea.cli.main import main

sys.exit(main())
