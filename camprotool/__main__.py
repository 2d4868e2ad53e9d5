import sys

from camprotool.cli import main

sys.exit(main())
