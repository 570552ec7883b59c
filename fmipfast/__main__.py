import sys

from fmipfast.cli import main

sys.exit(main())
