import sys

from proxycap.cli import main

sys.exit(main())
